"""A job's exclusions: the occurrences of its schedule it does not have, on the wall clock of its time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from services.ticker.schedule_index import ScheduleIndex
from shared.contracts.jobs import JobState, JobUpdated
from shared.contracts.schedules import DateSchedule, Exclusions
from shared.schedule.errors import InvalidScheduleError
from shared.schedule.exclusions import MAX_DATES, MAX_RULES, check_exclusions, excluded
from shared.schedule.firing import next_fire, passed_date
from tests.factories import job_created, job_following, job_state, timing_of

pytestmark = pytest.mark.unit

BERLIN = "Europe/Berlin"


def weekdays_at_nine(exclusions: Exclusions | None, timezone: str = "UTC") -> JobState:
    return job_state("0 9 * * 1-5", timezone=timezone, exclusions=exclusions, at=datetime(2026, 1, 1, tzinfo=UTC))


def test_limits_and_rules_are_checked() -> None:
    check_exclusions(Exclusions(dates=(date(2026, 12, 25),), rules=("* * 25 12 *", "0 30 9 * * 1", "@daily")))
    with pytest.raises(InvalidScheduleError, match="exclusion rule"):
        check_exclusions(Exclusions(rules=("61 * * * *",)))
    with pytest.raises(InvalidScheduleError, match=f"at most {MAX_RULES}"):
        check_exclusions(Exclusions(rules=("* * * * *",) * (MAX_RULES + 1)))
    many = tuple(date(2000, 1, 1) + timedelta(days=i) for i in range(MAX_DATES + 1))
    with pytest.raises(InvalidScheduleError, match=f"at most {MAX_DATES}"):
        check_exclusions(Exclusions(dates=many))


def test_a_holiday_is_skipped_and_the_next_working_day_fires() -> None:
    christmas_eve = datetime(2026, 12, 24, 9, tzinfo=UTC)  # a Thursday; the 25th is a Friday
    plain = weekdays_at_nine(None)
    assert next_fire(plain, christmas_eve) == datetime(2026, 12, 25, 9, tzinfo=UTC)
    by_date = weekdays_at_nine(Exclusions(dates=(date(2026, 12, 25),)))
    by_rule = weekdays_at_nine(Exclusions(rules=("* * 25 12 *",)))
    for job in (by_date, by_rule):
        assert next_fire(job, christmas_eve) == datetime(2026, 12, 28, 9, tzinfo=UTC)  # Monday
    # A rule on the time removes that time only.
    mondays = weekdays_at_nine(Exclusions(rules=("0 9 * * 1",)))
    assert next_fire(mondays, datetime(2026, 12, 25, 9, tzinfo=UTC)) == datetime(2026, 12, 29, 9, tzinfo=UTC)


def test_dates_are_days_in_the_jobs_time_zone() -> None:
    # 09:00 in Tokyo is 00:00 UTC the same day; the excluded date is Tokyo's.
    tokyo = weekdays_at_nine(Exclusions(dates=(date(2026, 12, 25),)), timezone="Asia/Tokyo")
    assert next_fire(tokyo, datetime(2026, 12, 24, 0, tzinfo=UTC)) == datetime(2026, 12, 28, 0, tzinfo=UTC)
    assert excluded(datetime(2026, 12, 25, 0, tzinfo=UTC), "Asia/Tokyo", tokyo.exclusions)
    assert not excluded(datetime(2026, 12, 25, 0, tzinfo=UTC), "America/New_York", tokyo.exclusions)


def test_on_a_spring_forward_day_the_time_the_occurrence_fires_at_is_what_is_matched() -> None:
    # 29 March 2026 in Berlin: 02:00 becomes 03:00, so 02:30 fires at 03:00 (01:00 UTC).
    def job(exclusions: Exclusions | None) -> JobState:
        return job_state("30 2 * * *", timezone=BERLIN, exclusions=exclusions, at=datetime(2026, 1, 1, tzinfo=UTC))

    before = datetime(2026, 3, 28, 1, 30, tzinfo=UTC)  # 02:30 CET the day before
    that_day, day_after = datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 30, 0, 30, tzinfo=UTC)
    assert next_fire(job(None), before) == that_day
    assert next_fire(job(Exclusions(rules=("* 3 * * *",))), before) == day_after  # it fires at 03:00: removed
    # Every 02:xx of every other day is excluded by that rule, so only the DST day's (which fires at 03:00) is left.
    assert next_fire(job(Exclusions(rules=("* 2 * * *",))), before) == that_day
    assert next_fire(job(Exclusions(dates=(date(2026, 3, 29),))), before) == day_after


def test_on_a_fall_back_day_one_excluded_date_removes_exactly_the_one_occurrence() -> None:
    # 25 October 2026 in Berlin: 03:00 becomes 02:00 again; 02:30 fires once, the first time (00:30 UTC).
    def job(exclusions: Exclusions | None) -> JobState:
        return job_state("30 2 * * *", timezone=BERLIN, exclusions=exclusions, at=datetime(2026, 1, 1, tzinfo=UTC))

    before = datetime(2026, 10, 24, 0, 30, tzinfo=UTC)  # 02:30 CEST the day before
    fires = [datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)]
    assert _following(job(None), before, 2) == fires
    assert _following(job(Exclusions(dates=(date(2026, 10, 25),))), before, 1) == fires[1:]


def test_a_frequent_job_passes_over_a_whole_excluded_day_hour_or_minute_at_once() -> None:
    def every_second(exclusions: Exclusions, timezone: str = "UTC") -> JobState:
        return job_state("* * * * * *", timezone=timezone, exclusions=exclusions, at=datetime(2026, 1, 1, tzinfo=UTC))

    eve = datetime(2026, 12, 24, 23, 59, 59, tzinfo=UTC)
    boxing_day = datetime(2026, 12, 26, tzinfo=UTC)  # 86,400 excluded occurrences later
    assert next_fire(every_second(Exclusions(dates=(date(2026, 12, 25),))), eve) == boxing_day
    assert next_fire(every_second(Exclusions(rules=("* * 25 12 *",))), eve) == boxing_day
    nine = datetime(2026, 12, 7, 8, 59, 59, tzinfo=UTC)  # a Monday
    assert next_fire(every_second(Exclusions(rules=("* 9 * * 1",))), nine) == nine.replace(hour=10, minute=0, second=0)
    assert next_fire(every_second(Exclusions(rules=("0 9 * * 1",))), nine) == nine.replace(hour=9, minute=1, second=0)
    even_seconds = every_second(Exclusions(rules=("*/2 * * * * *",)))
    assert next_fire(even_seconds, nine) == nine.replace(hour=9, minute=0, second=1)
    # Across daylight saving in Berlin, an excluded hour is passed over on the wall clock.
    fall_back = every_second(Exclusions(rules=("* 2 * * *",)), BERLIN)
    # 25 October: 02:00-02:59 CEST (00:00-00:59 UTC) removed; the repeated 02:xx CET does not fire (first time only).
    assert next_fire(fall_back, datetime(2026, 10, 24, 23, 59, 59, tzinfo=UTC)) == datetime(2026, 10, 25, 2, tzinfo=UTC)
    spring = every_second(Exclusions(rules=("* 3 * * *",)), BERLIN)
    # 29 March: 02:00 CET becomes 03:00 CEST (01:00 UTC); 03:00-03:59 CEST removed, 04:00 CEST is 02:00 UTC.
    assert next_fire(spring, datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)) == datetime(2026, 3, 29, 2, tzinfo=UTC)


def test_exclusions_that_remove_everything_mean_it_never_fires_again() -> None:
    every_day = weekdays_at_nine(Exclusions(rules=("* * * * *",)))
    assert next_fire(every_day, datetime(2026, 1, 1, tzinfo=UTC)) is None


def test_a_date_jobs_one_occurrence_on_an_excluded_day_is_not_an_occurrence() -> None:
    at = datetime(2026, 12, 25, 9, tzinfo=UTC)
    job = job_state(at=datetime(2026, 1, 1, tzinfo=UTC), schedule=DateSchedule(at=at))
    assert passed_date(job, at + timedelta(hours=1)) == at
    skipped = msgspec.structs.replace(job, exclusions=Exclusions(dates=(date(2026, 12, 25),)))
    assert passed_date(skipped, at + timedelta(hours=1)) is None
    assert next_fire(skipped, at - timedelta(hours=1)) is None


def test_the_tickers_index_skips_excluded_occurrences_and_sees_them_change() -> None:
    index = ScheduleIndex()
    job = weekdays_at_nine(Exclusions(dates=(date(2026, 12, 25),)))
    start = datetime(2026, 12, 24, 9, tzinfo=UTC)
    index.apply(timing_of(job_created(job)), start)
    assert index.next_due() == datetime(2026, 12, 28, 9, tzinfo=UTC)
    # The exclusion removed: the 25th is due again (an update that changes only the exclusions is seen).
    updated = msgspec.structs.replace(job, exclusions=None)
    event = msgspec.structs.replace(job_following(JobUpdated, updated, 2), changed=("exclusions",))
    index.apply(timing_of(event), start)
    assert index.next_due() == datetime(2026, 12, 25, 9, tzinfo=UTC)


def test_old_job_events_without_exclusions_decode_as_none() -> None:
    job = weekdays_at_nine(None)
    encoded = msgspec.json.encode(job_created(job))
    assert b"exclusions" in encoded
    old = encoded.replace(b',"exclusions":null', b"")
    assert b"exclusions" not in old
    assert timing_of(msgspec.json.decode(old, type=type(job_created(job)))).job.exclusions is None


def _following(job: JobState, after: datetime, n: int) -> list[datetime]:
    found: list[datetime] = []
    while len(found) < n and (t := next_fire(job, after)) is not None:
        found.append(t)
        after = t
    return found
