"""Daylight saving, checked against an independent brute-force minute-by-minute scan.

Acceptance: DST tests in America/New_York (spring forward and fall back), Europe/London and Australia/Lord_Howe
(30-minute shift) fire exactly the specified occurrences, checked against an independent brute-force
minute-by-minute scan.

The oracle below never calls the project's code. It walks every UTC minute of a three-day window around each
transition (found by scanning the year, not hard-coded), converts it to local wall time with zoneinfo and applies
the rules of DESIGN.md literally:

- a wall time fires at the first instant that shows it (fold=0 side of a repeated time); the second pass is silent;
- wall times skipped by a gap fire at the first instant after the gap (the transition), once however many match;
- interval schedules fire every N seconds from the anchor in UTC, whatever the wall clock says.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from shared.contracts.schedules import CalendarRule, CalendarSchedule, CronSchedule, IntervalSchedule, Schedule
from shared.schedule.occurrences import next_after, occurrences_between

pytestmark = pytest.mark.unit

MINUTE = timedelta(minutes=1)
# Longer than any fall back of the zones tested (an hour at most): a wall time seen before a window opens is seen
# again, if at all, within this long.
LOOKBACK = timedelta(hours=3)
YEARS = (2026, 2027)
ZONES = ("America/New_York", "Europe/London", "Australia/Lord_Howe")

Matcher = Callable[[datetime], bool]


# --- Transitions, found by scanning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    zone: str
    instant: datetime  # the first UTC instant with the new offset
    shift: timedelta  # new offset minus old: positive springs forward, negative falls back

    @property
    def kind(self) -> str:
        return "spring-forward" if self.shift > timedelta(0) else "fall-back"

    @property
    def local_date(self) -> date:
        return self.instant.astimezone(ZoneInfo(self.zone)).date()

    @property
    def window(self) -> tuple[datetime, datetime]:
        """Three whole UTC days around the transition: the day before, its day and the day after."""
        day = self.instant.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=1), day + timedelta(days=2)

    @property
    def label(self) -> str:
        return f"{self.zone}-{self.local_date.isoformat()}-{self.kind}"


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def find_transitions(zone: str, year: int) -> list[Transition]:
    """Every change of UTC offset during `year`: days scanned at UTC midnight, then bisected to the minute."""
    tz = ZoneInfo(zone)
    found: list[Transition] = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        following = day + timedelta(days=1)
        before, after = _offset(tz, day), _offset(tz, following)
        if before != after:
            low, high = day, following  # offset(low) == before, offset(high) == after
            while high - low > MINUTE:
                mid = low + (high - low) // 2
                mid = mid.replace(second=0, microsecond=0)
                if _offset(tz, mid) == before:
                    low = mid
                else:
                    high = mid
            found.append(Transition(zone, high, after - before))
        day = following
    return found


TRANSITIONS = [t for zone in ZONES for year in YEARS for t in find_transitions(zone, year)]


# --- The oracle -----------------------------------------------------------------------------------------------------


@cache
def wall_scan(
    zone: str, start: datetime, end: datetime, step: timedelta = MINUTE
) -> tuple[tuple[datetime, tuple[datetime, ...]], ...]:
    """For each UTC instant in (start, end], `step` apart: the wall times it is the first instant for, oldest first.

    That is its own wall time unless already seen (the second pass of a fall back), preceded by every wall time a
    gap skipped just before it (the transition instant is the first valid instant after them). "Seen" includes the
    wall times shown at or before `start` (scanned from LOOKBACK earlier, not reported): a window that opens at or
    during the first pass of a fall back must not fire its wall times again on the second pass.
    """
    tz = ZoneInfo(zone)
    seen: set[datetime] = set()
    instant = start - LOOKBACK
    while instant <= start:
        seen.add(instant.astimezone(tz).replace(tzinfo=None))
        instant += step
    previous = start.astimezone(tz).replace(tzinfo=None)
    rows: list[tuple[datetime, tuple[datetime, ...]]] = []
    instant = start + step
    while instant <= end:
        wall = instant.astimezone(tz).replace(tzinfo=None)
        candidates: list[datetime] = []
        skipped = previous + step
        while skipped < wall:  # only in a gap: the clock jumped by more than a step
            candidates.append(skipped)
            skipped += step
        candidates.append(wall)
        firsts = tuple(c for c in candidates if c not in seen)
        seen.update(firsts)
        rows.append((instant, firsts))
        previous = wall
        instant += step
    return tuple(rows)


def brute_force(
    matches: Matcher, zone: str, start: datetime, end: datetime, step: timedelta = MINUTE
) -> list[datetime]:
    """Every instant in (start, end] that fires, each once."""
    return [instant for instant, walls in wall_scan(zone, start, end, step) if any(matches(w) for w in walls)]


def brute_force_interval(anchor: datetime, every: timedelta, start: datetime, end: datetime) -> list[datetime]:
    """Every UTC minute in (start, end] that lies a whole number of steps at or after the anchor."""
    fired = []
    instant = start + MINUTE
    while instant <= end:
        if instant >= anchor and (instant - anchor) % every == timedelta(0):
            fired.append(instant)
        instant += MINUTE
    return fired


def _expand(field: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, last_text = base.split("-")
            first, last = int(first_text), int(last_text)
        else:
            first = int(base)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *"}


def cron_matcher(expression: str) -> Matcher:
    """Wall-clock (hour, minute, second) sets for the daily/hourly/every-N-minutes expressions used here."""
    fields = _MACROS.get(expression, expression).split()
    second = fields.pop(0) if len(fields) == 6 else "0"  # six fields put seconds first
    minute, hour, *days = fields
    assert days == ["*", "*", "*"], f"the oracle only knows wall-clock hour/minute/second sets: {expression}"
    seconds, minutes, hours = _expand(second, 0, 59), _expand(minute, 0, 59), _expand(hour, 0, 23)
    return lambda wall: wall.hour in hours and wall.minute in minutes and wall.second in seconds


def calendar_matcher(rule: CalendarRule) -> Matcher:
    texts = (*rule.times, *([rule.time] if rule.time else []))
    times = {(int(t[0:2]), int(t[3:5]), int(t[6:8] or 0)) for t in texts}  # "HH:MM" or "HH:MM:SS"
    weekdays = {7 if d == 0 else d for d in rule.weekdays}
    assert not rule.days_of_month and not rule.months
    excluded = set(rule.exclude_dates)
    return lambda wall: (
        (wall.hour, wall.minute, wall.second) in times
        and (not weekdays or wall.isoweekday() in weekdays)
        and wall.date() not in excluded
    )


def hourly_minutes_matcher(hours: range, minutes: tuple[int, ...]) -> Matcher:
    return lambda wall: wall.hour in hours and wall.minute in minutes and wall.second == 0


# --- The oracle and the transitions are what they claim --------------------------------------------------------------


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_transitions_are_found_for_each_zone_and_year() -> None:
    by_zone_year = {(t.zone, t.instant.year): t for t in TRANSITIONS}
    assert len(TRANSITIONS) == len(ZONES) * len(YEARS) * 2 == len({t.label for t in TRANSITIONS})
    assert len(by_zone_year) == len(ZONES) * len(YEARS)
    for t in TRANSITIONS:
        half_hour = t.zone == "Australia/Lord_Howe"
        assert abs(t.shift) == timedelta(minutes=30 if half_hour else 60), t.label
        assert t.local_date.isoweekday() == 7, t.label  # all three zones change on a Sunday
    found = {(t.zone, t.instant) for t in TRANSITIONS}
    assert ("America/New_York", utc(2026, 3, 8, 7)) in found  # 02:00 EST -> 03:00 EDT
    assert ("America/New_York", utc(2026, 11, 1, 6)) in found  # 02:00 EDT -> 01:00 EST
    assert ("Europe/London", utc(2026, 3, 29, 1)) in found  # 01:00 GMT -> 02:00 BST
    assert ("Europe/London", utc(2026, 10, 25, 1)) in found  # 02:00 BST -> 01:00 GMT
    assert ("Australia/Lord_Howe", utc(2026, 4, 4, 15)) in found  # 02:00 +11 -> 01:30 +10:30 on 5 April
    assert ("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)) in found  # 02:00 +10:30 -> 02:30 +11 on 4 October


@pytest.mark.parametrize(
    ("zone", "expression", "start", "end", "expected"),
    [
        # New York spring forward: 02:30 does not exist; 03:00 EDT (07:00Z) is the first valid instant.
        ("America/New_York", "30 2 * * *", utc(2026, 3, 8), utc(2026, 3, 9), [utc(2026, 3, 8, 7)]),
        # Every skipped quarter hour and 03:00 itself land on one instant, once.
        (
            "America/New_York",
            "*/15 * * * *",
            utc(2026, 3, 8, 6, 30),
            utc(2026, 3, 8, 7, 15),
            [utc(2026, 3, 8, 6, 45), utc(2026, 3, 8, 7), utc(2026, 3, 8, 7, 15)],
        ),
        # New York fall back: 01:30 fires as EDT (05:30Z), not again as EST (06:30Z).
        ("America/New_York", "30 1 * * *", utc(2026, 11, 1), utc(2026, 11, 2), [utc(2026, 11, 1, 5, 30)]),
        # A window that opens at (after) the first 01:30 holds no 01:30: the second pass (06:30Z) stays silent.
        ("America/New_York", "30 1 * * *", utc(2026, 11, 1, 5, 30), utc(2026, 11, 2), []),
        # One that opens during the first pass sees 01:30 there, once.
        ("America/New_York", "30 1 * * *", utc(2026, 11, 1, 5, 15), utc(2026, 11, 2), [utc(2026, 11, 1, 5, 30)]),
        # Lord Howe spring forward: 02:15 does not exist; 02:30 +11 (15:30Z the day before) is first valid.
        ("Australia/Lord_Howe", "15 2 * * *", utc(2026, 10, 3), utc(2026, 10, 4), [utc(2026, 10, 3, 15, 30)]),
        # Lord Howe fall back: 01:45 first at +11 (14:45Z), not again at +10:30 (15:15Z).
        ("Australia/Lord_Howe", "45 1 * * *", utc(2026, 4, 4), utc(2026, 4, 5), [utc(2026, 4, 4, 14, 45)]),
    ],
)
def test_the_oracle_agrees_with_hand_worked_cases(
    zone: str, expression: str, start: datetime, end: datetime, expected: list[datetime]
) -> None:
    assert brute_force(cron_matcher(expression), zone, start, end) == expected


def _tier(transition: Transition) -> list[pytest.MarkDecorator]:
    """The second year's cases repeat the first year's a year on: the whole suite runs them (marker `slow`), the unit
    tier the first year's, every zone in both directions."""
    return [pytest.mark.slow] if transition.instant.year > YEARS[0] else []


# --- Cron ------------------------------------------------------------------------------------------------------------

# Around 01:00-03:00, where New York and London change; the boundaries of the gap and of the repeated hour.
COMMON_EXPRESSIONS = (
    "30 2 * * *",
    "0 1 * * *",
    "30 1 * * *",
    "59 1 * * *",
    "0 2 * * *",
    "0 3 * * *",
    "*/15 * * * *",
    "*/7 0-4 * * *",
    "15,45 1-3 * * *",
    "0 * * * *",
    "@hourly",
    "0 30 2 * * *",  # six fields, seconds first
)
# Lord Howe moves half an hour at 02:00: gap 02:00-02:29 in October, 01:30-01:59 twice in April.
LORD_HOWE_EXPRESSIONS = (
    "15 2 * * *",
    "45 1 * * *",
    "*/10 1-2 * * *",
    "29 2 * * *",
    "29 1 * * *",
    "31 1 * * *",
    "0,30 1-2 * * *",
)


def _expressions(zone: str) -> tuple[str, ...]:
    return COMMON_EXPRESSIONS + (LORD_HOWE_EXPRESSIONS if zone == "Australia/Lord_Howe" else ())


CRON_CASES = [
    pytest.param(t, expression, id=f"{t.label}-{expression}", marks=_tier(t))
    for t in TRANSITIONS
    for expression in _expressions(t.zone)
]


@pytest.mark.parametrize(("transition", "expression"), CRON_CASES)
def test_cron_occurrences_match_brute_force(transition: Transition, expression: str) -> None:
    start, end = transition.window
    got = list(occurrences_between(CronSchedule(expression=expression), transition.zone, start, end))
    expected = brute_force(cron_matcher(expression), transition.zone, start, end)
    assert expected, "the window holds occurrences"
    assert got == expected


# From every minute (and half minute) of the 90 minutes either side of the transition, next_after gives the oracle's.
SWEEP_EXPRESSIONS = {
    "America/New_York": ("*/15 * * * *", "30 1 * * *", "30 2 * * *"),
    "Europe/London": ("*/15 * * * *", "30 1 * * *", "0 2 * * *"),
    "Australia/Lord_Howe": ("*/10 1-2 * * *", "45 1 * * *", "15 2 * * *"),
}
SWEEP_CASES = [
    pytest.param(t, expression, id=f"{t.label}-{expression}", marks=_tier(t))
    for t in TRANSITIONS
    for expression in SWEEP_EXPRESSIONS[t.zone]
]


def _sweep(transition: Transition) -> Iterator[datetime]:
    instant = transition.instant - timedelta(minutes=90)
    while instant <= transition.instant + timedelta(minutes=90):
        yield instant
        yield instant + timedelta(seconds=30)
        instant += MINUTE


@pytest.mark.parametrize(("transition", "expression"), SWEEP_CASES)
def test_next_after_from_every_minute_near_the_transition_matches_brute_force(
    transition: Transition, expression: str
) -> None:
    start, end = transition.window
    fires = brute_force(cron_matcher(expression), transition.zone, start, end)
    schedule = CronSchedule(expression=expression)
    for after in _sweep(transition):
        index = bisect.bisect_right(fires, after)
        assert index < len(fires), "the window reaches past the sweep"
        assert next_after(schedule, transition.zone, after) == fires[index], f"after {after.isoformat()}"


# Seconds (six fields, seconds first) need a finer scan: every UTC second of the two hours either side.
SECOND = timedelta(seconds=1)
SECONDS_EXPRESSIONS = ("30 30 2 * * *", "30 30 1 * * *", "59 59 1 * * *", "15 */20 * * * *", "10 */5 1-2 * * *")
LORD_HOWE_SECONDS_EXPRESSIONS = ("45 45 1 * * *", "15 15 2 * * *", "59 29 2 * * *", "0 30 2 * * *")
SECONDS_CASES = [
    pytest.param(t, expression, id=f"{t.label}-{expression}", marks=_tier(t))
    for t in TRANSITIONS
    for expression in SECONDS_EXPRESSIONS + (LORD_HOWE_SECONDS_EXPRESSIONS if t.zone == "Australia/Lord_Howe" else ())
]


def _narrow_window(transition: Transition) -> tuple[datetime, datetime]:
    return transition.instant - timedelta(hours=2), transition.instant + timedelta(hours=2)


@pytest.mark.parametrize(("transition", "expression"), SECONDS_CASES)
def test_six_field_cron_matches_a_second_by_second_scan(transition: Transition, expression: str) -> None:
    start, end = _narrow_window(transition)
    got = list(occurrences_between(CronSchedule(expression=expression), transition.zone, start, end))
    expected = brute_force(cron_matcher(expression), transition.zone, start, end, SECOND)
    assert expected, "the window holds occurrences"
    assert got == expected


# --- Calendar rules and RRULEs ---------------------------------------------------------------------------------------


def _calendar_rules(transition: Transition) -> list[tuple[str, CalendarRule]]:
    sunday = transition.local_date
    rules = [
        ("01:30", CalendarRule(time="01:30")),
        ("02:30", CalendarRule(time="02:30")),
        ("many-times", CalendarRule(times=("01:00", "01:30", "01:59", "02:00", "02:30", "03:00"))),
        ("sundays-only", CalendarRule(weekdays=(7,), times=("01:30", "02:30"))),
        ("sunday-as-0", CalendarRule(weekdays=(0, 6), times=("01:15", "02:15"))),
        ("transition-day-excluded", CalendarRule(times=("01:30", "02:30"), exclude_dates=(sunday,))),
        ("next-day-excluded", CalendarRule(times=("01:30", "02:30"), exclude_dates=(sunday + timedelta(days=1),))),
    ]
    if transition.zone == "Australia/Lord_Howe":
        rules += [
            ("02:15", CalendarRule(time="02:15")),
            ("01:45", CalendarRule(time="01:45")),
            ("half-hour-edges", CalendarRule(times=("01:29", "01:30", "01:59", "02:00", "02:29", "02:30"))),
        ]
    return rules


CALENDAR_CASES = [
    pytest.param(t, rule, id=f"{t.label}-calendar-{name}", marks=_tier(t))
    for t in TRANSITIONS
    for name, rule in _calendar_rules(t)
]


@pytest.mark.parametrize(("transition", "rule"), CALENDAR_CASES)
def test_calendar_rule_occurrences_match_brute_force(transition: Transition, rule: CalendarRule) -> None:
    start, end = transition.window
    schedule = CalendarSchedule(rule=rule, anchor=start)
    got = list(occurrences_between(schedule, transition.zone, start, end))
    expected = brute_force(calendar_matcher(rule), transition.zone, start, end)
    assert expected, "the window holds occurrences"
    assert got == expected


CALENDAR_SECONDS_CASES = [
    pytest.param(t, times, id=f"{t.label}-calendar-{'-'.join(times)}", marks=_tier(t))
    for t in TRANSITIONS
    for times in (("01:30:30", "02:30:30"), ("01:45:45", "02:15:15", "02:29:59", "02:59:59"))
]


@pytest.mark.parametrize(("transition", "times"), CALENDAR_SECONDS_CASES)
def test_calendar_times_with_seconds_match_a_second_by_second_scan(
    transition: Transition, times: tuple[str, ...]
) -> None:
    start, end = _narrow_window(transition)
    rule = CalendarRule(times=times)
    got = list(occurrences_between(CalendarSchedule(rule=rule, anchor=start), transition.zone, start, end))
    expected = brute_force(calendar_matcher(rule), transition.zone, start, end, SECOND)
    assert expected, "the window holds occurrences"
    assert got == expected


RRULE_CASES = [pytest.param(t, id=f"{t.label}-rrule-daily-1-2-at-00-30", marks=_tier(t)) for t in TRANSITIONS]


@pytest.mark.parametrize("transition", RRULE_CASES)
def test_calendar_rrule_occurrences_match_brute_force(transition: Transition) -> None:
    start, end = transition.window
    schedule = CalendarSchedule(rrule="FREQ=DAILY;BYHOUR=1,2;BYMINUTE=0,30", anchor=start - timedelta(days=7))
    got = list(occurrences_between(schedule, transition.zone, start, end))
    expected = brute_force(hourly_minutes_matcher(range(1, 3), (0, 30)), transition.zone, start, end)
    assert got == expected


# --- Intervals -------------------------------------------------------------------------------------------------------

INTERVAL_SECONDS = (900, 2700, 3600, 5400, 86400)
INTERVAL_CASES = [
    pytest.param(t, seconds, id=f"{t.label}-every-{seconds}s", marks=_tier(t))
    for t in TRANSITIONS
    for seconds in INTERVAL_SECONDS
]


@pytest.mark.parametrize(("transition", "seconds"), INTERVAL_CASES)
def test_interval_keeps_fixed_utc_spacing_across_the_transition(transition: Transition, seconds: int) -> None:
    start, end = transition.window
    anchor = start + timedelta(minutes=7)
    every = timedelta(seconds=seconds)
    schedule: Schedule = IntervalSchedule(every_seconds=seconds, anchor=anchor)
    got = list(occurrences_between(schedule, transition.zone, start, end))
    assert got == brute_force_interval(anchor, every, start, end)
    assert got[0] == anchor and got[0] < transition.instant <= got[-1]
    assert all(b - a == every for a, b in itertools.pairwise(got))
    # The wall clock does jump between two of them: the schedule ignored it.
    tz = ZoneInfo(transition.zone)
    walls = [g.astimezone(tz).replace(tzinfo=None) for g in got]
    assert any(b - a != every for a, b in itertools.pairwise(walls))
