"""Schedule computation, including daylight saving, checked against a brute-force scan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.contracts.schedules import CronSchedule, DateSchedule, IntervalSchedule
from shared.schedule.errors import InvalidCronExpressionError, InvalidTimezoneError
from shared.schedule.occurrences import next_after, occurrences_between, validate_cron, validate_schedule

pytestmark = pytest.mark.unit


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def brute_force_daily(hour: int, minute: int, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Scan every minute in UTC; keep the first instant whose wall clock is at or past hour:minute each local day.

    Independent of the implementation: a wall time skipped by a gap lands on the first instant after it, and a
    wall time seen twice counts once because only the first instant per local day is kept.
    """
    zone = ZoneInfo(tz)
    fired: dict[object, datetime] = {}
    t = start
    while t <= end:
        wall = t.astimezone(zone)
        if (wall.hour, wall.minute) >= (hour, minute) and wall.date() not in fired:
            fired[wall.date()] = t
        t += timedelta(minutes=1)
    # Days whose first minute scanned is already past the time (the scan start) are not occurrences.
    return [v for v in fired.values() if v > start + timedelta(minutes=1)]


@pytest.mark.parametrize(
    ("tz", "hour", "minute", "start", "end"),
    [
        ("America/New_York", 2, 30, utc(2026, 3, 6), utc(2026, 3, 11)),  # spring forward: 02:30 does not exist
        ("America/New_York", 1, 30, utc(2026, 10, 30), utc(2026, 11, 4)),  # fall back: 01:30 happens twice
        ("Europe/London", 1, 15, utc(2026, 3, 27), utc(2026, 3, 31)),
        ("Europe/London", 1, 15, utc(2026, 10, 23), utc(2026, 10, 27)),
        ("Australia/Lord_Howe", 2, 10, utc(2026, 10, 1), utc(2026, 10, 6)),  # 30-minute shift
        ("Australia/Lord_Howe", 1, 45, utc(2026, 4, 2), utc(2026, 4, 7)),
    ],
)
def test_daily_cron_across_dst_matches_brute_force(
    tz: str, hour: int, minute: int, start: datetime, end: datetime
) -> None:
    schedule = CronSchedule(expression=f"{minute} {hour} * * *")
    got = list(occurrences_between(schedule, tz, start, end))
    assert got == brute_force_daily(hour, minute, tz, start, end)
    assert len(got) == len({g.date() for g in got}) >= 4


def test_nonexistent_times_in_a_gap_fire_once_at_the_transition() -> None:
    schedule = CronSchedule(expression="*/20 2 * * *")
    got = list(occurrences_between(schedule, "America/New_York", utc(2026, 3, 8, 5), utc(2026, 3, 8, 8)))
    assert got == [utc(2026, 3, 8, 7)]  # 03:00 EDT, the first valid instant after 02:00-02:40 EST


def test_ambiguous_hour_fires_first_occurrence_only() -> None:
    schedule = CronSchedule(expression="0,30 1 * * *")
    got = list(occurrences_between(schedule, "America/New_York", utc(2026, 11, 1, 4), utc(2026, 11, 1, 8)))
    assert got == [utc(2026, 11, 1, 5), utc(2026, 11, 1, 5, 30)]  # 01:00 and 01:30 EDT, not EST


def test_six_fields_put_seconds_first() -> None:
    got = list(
        occurrences_between(CronSchedule(expression="*/15 * * * * *"), "UTC", utc(2026, 1, 1), utc(2026, 1, 1, 0, 1))
    )
    assert got == [utc(2026, 1, 1, 0, 0, s) for s in (15, 30, 45)] + [utc(2026, 1, 1, 0, 1)]


def test_every_second() -> None:
    start = utc(2026, 1, 1, 12)
    assert next_after(CronSchedule(expression="* * * * * *"), "UTC", start) == start + timedelta(seconds=1)


def test_five_fields_and_time_zone() -> None:
    got = next_after(CronSchedule(expression="0 9 * * 1-5"), "America/New_York", utc(2026, 11, 20, 15))
    assert got == utc(2026, 11, 23, 14)  # Monday 09:00 EST


@pytest.mark.parametrize("expression", ["@hourly", "@daily", "0 0 L * *", "0 0 * * 5#2", "0 2 * * *"])
def test_valid_expressions(expression: str) -> None:
    validate_cron(expression)


@pytest.mark.parametrize(
    "expression", ["61 * * * *", "* * *", "", "bad", "0 0 31 2 *", "* * * * * * * *", "0 25 * * *"]
)
def test_invalid_expressions(expression: str) -> None:
    with pytest.raises(InvalidCronExpressionError):
        validate_cron(expression)


def test_unknown_time_zone() -> None:
    with pytest.raises(InvalidTimezoneError):
        validate_schedule(CronSchedule(expression="* * * * *"), "Mars/Olympus")


def test_interval_ignores_wall_clock() -> None:
    schedule = IntervalSchedule(every_seconds=3600, anchor=utc(2026, 3, 8, 5))
    got = list(occurrences_between(schedule, "America/New_York", utc(2026, 3, 8, 5), utc(2026, 3, 8, 9)))
    assert got == [utc(2026, 3, 8, h) for h in (6, 7, 8, 9)]


def test_date_fires_once() -> None:
    schedule = DateSchedule(at=utc(2027, 1, 1))
    assert next_after(schedule, "UTC", utc(2026, 12, 31)) == utc(2027, 1, 1)
    assert next_after(schedule, "UTC", utc(2027, 1, 1)) is None


def test_starting_inside_the_repeated_hour_does_not_fire_its_second_pass() -> None:
    # 06:10Z is 01:10 EST, the second 01:10 of the night: 01:30 already fired (as EDT), the next is tomorrow 01:00.
    schedule = CronSchedule(expression="0,30 1 * * *")
    assert next_after(schedule, "America/New_York", utc(2026, 11, 1, 6, 10)) == utc(2026, 11, 2, 6)


def test_starting_inside_a_gap_fires_at_the_transition() -> None:
    # 06:59:59Z is 01:59:59 EST, just before the jump to 03:00 EDT: 02:30 does not exist and fires at 07:00Z.
    schedule = CronSchedule(expression="30 2 * * *")
    assert next_after(schedule, "America/New_York", utc(2026, 3, 8, 6, 59, 59)) == utc(2026, 3, 8, 7)
    assert next_after(schedule, "America/New_York", utc(2026, 3, 8, 7)) == utc(2026, 3, 9, 6, 30)
