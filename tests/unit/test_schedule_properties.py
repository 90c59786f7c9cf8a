"""Property tests: for random cron, interval and calendar schedules in random time zones, the next fire times match
an independent brute-force scan (the oracle of test_dst_against_brute_force, which never calls the project's code)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.contracts.schedules import CalendarRule, CalendarSchedule, CronSchedule, IntervalSchedule
from shared.schedule.occurrences import occurrences_between
from tests.unit.test_dst_against_brute_force import _expand, brute_force, brute_force_interval, calendar_matcher

pytestmark = pytest.mark.unit

ZONES = (
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Australia/Adelaide",
    "Asia/Kolkata",
    "America/St_Johns",
    "Pacific/Chatham",
    "Asia/Kathmandu",
)
# Windows that often hold a clock change: a random day of 2026-2027, weighted to the change seasons.
DAYS = st.one_of(
    st.dates(min_value=datetime(2026, 3, 1).date(), max_value=datetime(2026, 4, 10).date()),
    st.dates(min_value=datetime(2026, 9, 20).date(), max_value=datetime(2026, 11, 10).date()),
    st.dates(min_value=datetime(2027, 1, 1).date(), max_value=datetime(2027, 12, 31).date()),
)
# As many examples as the loaded profile asks for (tests/conftest.py): 40 in the whole suite, 10 in `just test-unit`.
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def field(low: int, high: int) -> st.SearchStrategy[str]:
    single = st.integers(low, high).map(str)
    ranged = st.tuples(st.integers(low, high), st.integers(low, high)).map(lambda r: f"{min(r)}-{max(r)}")
    stepped = st.tuples(st.sampled_from(["*", f"{low}-{high}"]), st.integers(2, max(2, (high - low) // 2))).map(
        lambda s: f"{s[0]}/{s[1]}"
    )
    listed = st.lists(st.integers(low, high), min_size=2, max_size=4, unique=True).map(
        lambda v: ",".join(map(str, sorted(v)))
    )
    return st.one_of(st.just("*"), single, ranged, stepped, listed)


DOW_NAMES = {0: 7}  # cron's 0 and 7 are both Sunday; isoweekday says 7


def dow_values(text: str) -> frozenset[int]:
    return frozenset(DOW_NAMES.get(v, v) for v in _expand(text.replace("*", "0-6"), 0, 7))


@given(
    zone=st.sampled_from(ZONES),
    day=DAYS,
    minute=field(0, 59),
    hour=field(0, 23),
    dow=st.one_of(st.just("*"), field(0, 6)),
)
@SETTINGS
def test_cron_next_fire_times_match_a_minute_by_minute_scan(
    zone: str, day: object, minute: str, hour: str, dow: str
) -> None:
    expression = f"{minute} {hour} * * {dow}"
    minutes, hours = _expand(minute, 0, 59), _expand(hour, 0, 23)
    days = None if dow == "*" else dow_values(dow)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)  # type: ignore[arg-type]
    end = start + timedelta(days=2)

    def matches(wall: datetime) -> bool:
        return wall.minute in minutes and wall.hour in hours and (days is None or wall.isoweekday() in days)

    expected = brute_force(matches, zone, start, end)
    assert list(occurrences_between(CronSchedule(expression=expression), zone, start, end)) == expected, expression


@given(
    zone=st.sampled_from(ZONES),
    day=DAYS,
    second=field(0, 59),
    minute=field(0, 59),
    hour=st.integers(0, 23),
)
# The window opens at 01:00:00 EDT, New York's first 01:00 of the fall back (05:00Z, not in the window): 01:00:00
# EST (06:00Z) is its second pass and does not fire. The oracle once forgot what it saw before the window.
@example(zone="America/New_York", day=date(2026, 11, 1), second="0", minute="0", hour=1)
@SETTINGS
# An expression can fire every second of the hour (twice over in a fall back), and each fire time costs the project's
# code a millisecond or two: up to seconds per example. The whole suite runs this property; the unit tier checks
# six-field expressions at each transition (test_dst_against_brute_force).
@pytest.mark.slow
def test_six_field_cron_matches_a_second_by_second_scan(
    zone: str, day: object, second: str, minute: str, hour: int
) -> None:
    expression = f"{second} {minute} {hour} * * *"
    seconds, minutes = _expand(second, 0, 59), _expand(minute, 0, 59)
    # Three hours of seconds around the hour in local time, wherever the zone puts it (offsets are -12h to +14h).
    midday = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)  # type: ignore[arg-type]
    local_noon_offset = midday.astimezone(ZoneInfo(zone)).utcoffset() or timedelta(0)
    start = midday.replace(hour=0) + timedelta(hours=hour) - local_noon_offset - timedelta(hours=1)
    end = start + timedelta(hours=3)

    def matches(wall: datetime) -> bool:
        return wall.second in seconds and wall.minute in minutes and wall.hour == hour

    expected = brute_force(matches, zone, start, end, timedelta(seconds=1))
    assert list(occurrences_between(CronSchedule(expression=expression), zone, start, end)) == expected, expression


@given(
    every=st.integers(1, 7 * 86400),
    anchor_offset=st.integers(-86400, 86400),
    day=DAYS,
    zone=st.sampled_from(ZONES),
)
@SETTINGS
def test_interval_fire_times_are_whole_steps_from_the_anchor_in_utc(
    every: int, anchor_offset: int, day: object, zone: str
) -> None:
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)  # type: ignore[arg-type]
    anchor = (start + timedelta(seconds=anchor_offset)).replace(second=0)
    every_minutes = timedelta(minutes=max(1, every // 60))
    schedule = IntervalSchedule(every_seconds=every_minutes.total_seconds(), anchor=anchor)
    end = start + timedelta(days=3)
    got = list(occurrences_between(schedule, zone, start, end))
    assert got == brute_force_interval(anchor, every_minutes, start, end)


@given(
    zone=st.sampled_from(ZONES),
    day=DAYS,
    weekdays=st.lists(st.integers(1, 7), max_size=3, unique=True),
    times=st.lists(st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59])), min_size=1, max_size=3),
)
@SETTINGS
def test_calendar_fire_times_match_a_minute_by_minute_scan(
    zone: str, day: object, weekdays: list[int], times: list[tuple[int, int]]
) -> None:
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)  # type: ignore[arg-type]
    rule = CalendarRule(weekdays=tuple(sorted(weekdays)), times=tuple(sorted({f"{h:02}:{m:02}" for h, m in times})))
    schedule = CalendarSchedule(rule=rule, anchor=start - timedelta(days=30))
    end = start + timedelta(days=3)
    expected = brute_force(calendar_matcher(rule), zone, start, end)
    assert list(occurrences_between(schedule, zone, start, end)) == expected, rule


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 * * 0-0", datetime(2026, 3, 8, tzinfo=UTC)),  # Sundays only, not every day
        ("* 5-5 * * *", datetime(2026, 3, 2, 5, tzinfo=UTC)),  # during hour 5 only
        ("0 0 * * mon-MON", datetime(2026, 3, 9, tzinfo=UTC)),
    ],
)
def test_a_range_of_one_value_is_that_value(expression: str, expected: datetime) -> None:
    """Found by the properties above: croniter reads "a-a" as "*"."""
    after = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)  # a Monday
    assert (
        next(occurrences_between(CronSchedule(expression=expression), "UTC", after, after + timedelta(days=8)))
        == expected
    )
