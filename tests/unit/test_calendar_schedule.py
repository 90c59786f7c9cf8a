"""Calendar schedules: JSON rules and RRULEs in wall-clock time, with the daylight-saving rules of cron."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.contracts.schedules import CalendarRule, CalendarSchedule
from shared.schedule.errors import InvalidScheduleError
from shared.schedule.occurrences import next_after, occurrences_between, validate_schedule

pytestmark = pytest.mark.unit

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def rule(**fields: object) -> CalendarSchedule:
    return CalendarSchedule(rule=CalendarRule(**fields), anchor=ANCHOR)  # type: ignore[arg-type]


def runs(schedule: CalendarSchedule, tz: str, start: datetime, end: datetime) -> list[datetime]:
    return list(occurrences_between(schedule, tz, start, end))


def test_weekdays_at_nine_new_york_as_the_original_clients_send_it() -> None:
    schedule = rule(weekdays=(1, 2, 3, 4, 5), time="09:00")
    # Friday 2026-11-20 to Tuesday 2026-11-24: Fri, Mon, Tue at 09:00 EST (14:00 UTC).
    found = runs(
        schedule, "America/New_York", datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 24, 23, tzinfo=UTC)
    )
    assert found == [
        datetime(2026, 11, 20, 14, tzinfo=UTC),
        datetime(2026, 11, 23, 14, tzinfo=UTC),
        datetime(2026, 11, 24, 14, tzinfo=UTC),
    ]


def test_days_months_times_and_exclusions_combine() -> None:
    schedule = rule(
        days_of_month=(1, -1), months=(2, 3), times=("08:30", "17:00:15"), exclude_dates=(date(2027, 3, 1),)
    )
    found = runs(schedule, "UTC", datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 12, 31, tzinfo=UTC))
    assert found == [
        datetime(2027, 2, 1, 8, 30, tzinfo=UTC),
        datetime(2027, 2, 1, 17, 0, 15, tzinfo=UTC),
        datetime(2027, 2, 28, 8, 30, tzinfo=UTC),
        datetime(2027, 2, 28, 17, 0, 15, tzinfo=UTC),
        datetime(2027, 3, 31, 8, 30, tzinfo=UTC),
        datetime(2027, 3, 31, 17, 0, 15, tzinfo=UTC),
    ]


def test_sunday_is_seven_or_zero() -> None:
    for sunday in (0, 7):
        found = next_after(rule(weekdays=(sunday,), time="12:00"), "UTC", datetime(2026, 11, 22, 13, tzinfo=UTC))
        assert found == datetime(2026, 11, 29, 12, tzinfo=UTC)


def test_daylight_saving_gap_fires_once_at_the_first_valid_instant_and_overlap_fires_once() -> None:
    # New York springs forward on 2026-03-08 (02:00 -> 03:00) and falls back on 2026-11-01 (02:00 -> 01:00).
    gap = runs(
        rule(time="02:30"), "America/New_York", datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    )
    assert gap == [
        datetime(2026, 3, 6, 7, 30, tzinfo=UTC),  # 02:30 EST
        datetime(2026, 3, 7, 7, 30, tzinfo=UTC),
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # 02:30 does not exist: 03:00 EDT, the first valid instant
        datetime(2026, 3, 9, 6, 30, tzinfo=UTC),  # 02:30 EDT
    ]
    overlap = runs(
        rule(time="01:30"),
        "America/New_York",
        datetime(2026, 10, 31, tzinfo=UTC),
        datetime(2026, 11, 2, 12, tzinfo=UTC),
    )
    assert overlap == [
        datetime(2026, 10, 31, 5, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # the first 01:30 (EDT) only
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),
    ]


def test_rrule_strings_with_count_end() -> None:
    schedule = CalendarSchedule(rrule="FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0;COUNT=3", anchor=ANCHOR)
    found = runs(schedule, "Europe/Paris", ANCHOR, datetime(2027, 1, 1, tzinfo=UTC))
    assert found == [
        datetime(2026, 1, 5, 8, tzinfo=UTC),
        datetime(2026, 1, 7, 8, tzinfo=UTC),
        datetime(2026, 1, 12, 8, tzinfo=UTC),
    ]
    assert next_after(schedule, "Europe/Paris", datetime(2026, 1, 12, 8, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    "schedule",
    [
        rule(),
        rule(time="25:00"),
        rule(time="09:00+02:00"),
        rule(time="09:00", weekdays=(8,)),
        rule(time="09:00", days_of_month=(0,)),
        rule(time="09:00", months=(13,)),
        CalendarSchedule(rrule="FREQ=SOMETIMES", anchor=ANCHOR),
        CalendarSchedule(rrule="FREQ=MINUTELY", anchor=ANCHOR),
        CalendarSchedule(rrule="DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY", anchor=ANCHOR),
        CalendarSchedule(anchor=ANCHOR),
        CalendarSchedule(rule=CalendarRule(time="09:00"), rrule="FREQ=DAILY", anchor=ANCHOR),
    ],
)
def test_bad_calendars_are_refused(schedule: CalendarSchedule) -> None:
    with pytest.raises(InvalidScheduleError):
        validate_schedule(schedule, "UTC")
