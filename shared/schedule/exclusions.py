"""A job's exclusions: which of its schedule's occurrences it does not have (see `Exclusions`).

Matching is on the wall-clock time at which an occurrence fires in the job's time zone, after the daylight-saving
rules of `shared.schedule.wallclock`: on a spring-forward day a 02:30 occurrence fires at 03:00 and is matched as
03:00; on a fall-back day a repeated time fires once, the first time, and is matched once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Literal

from shared.contracts.schedules import Exclusions, Schedule
from shared.schedule.errors import InvalidCronExpressionError, InvalidScheduleError
from shared.schedule.occurrences import matches_cron, next_after, validate_cron
from shared.schedule.wallclock import to_instant, to_wall, zone

MAX_DATES = 1000
MAX_RULES = 20
# Consecutive excluded stretches after which a job is taken never to fire again (so exclusions that remove every
# occurrence cannot keep a ticker walking its schedule). A stretch is as much as an exclusion covers at once: a
# whole day for a date, so this is decades of excluded days.
MAX_SKIPPED = 10_000

_TICK = timedelta(microseconds=1)
_Unit = Literal["second", "minute", "hour", "day"]
_STEP: dict[_Unit, timedelta] = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_STEP_ORDER: tuple[_Unit, ...] = ("second", "minute", "hour", "day")


def check_exclusions(exclusions: Exclusions) -> None:
    """Raise InvalidScheduleError unless the exclusions are within their limits and every rule parses."""
    if len(exclusions.dates) > MAX_DATES:
        raise InvalidScheduleError(f"at most {MAX_DATES} excluded dates, got {len(exclusions.dates)}")
    if len(exclusions.rules) > MAX_RULES:
        raise InvalidScheduleError(f"at most {MAX_RULES} exclusion rules, got {len(exclusions.rules)}")
    for rule in exclusions.rules:
        try:
            validate_cron(rule)
        except InvalidCronExpressionError as exc:
            raise InvalidScheduleError(f"exclusion rule: {exc}") from exc


def excluded(instant: datetime, timezone: str, exclusions: Exclusions | None) -> bool:
    """Whether the occurrence at `instant` (aware) is one the job does not have."""
    return exclusions is not None and _excluded_through(instant, timezone, exclusions) is not None


def next_included(
    schedule: Schedule,
    timezone: str,
    after: datetime,
    exclusions: Exclusions | None,
    until: datetime | None = None,
) -> datetime | None:
    """The schedule's first occurrence strictly after `after` that is not excluded (None: none, or none by `until`).
    An excluded occurrence is passed over with the whole stretch its exclusion covers, not one occurrence at a time:
    a job firing every second with a day excluded takes one step over that day, not 86,400."""
    t = next_after(schedule, timezone, after)
    stretches = 0
    while t is not None and exclusions is not None and (through := _excluded_through(t, timezone, exclusions)):
        stretches += 1
        if stretches > MAX_SKIPPED or (until is not None and t > until):
            return None
        t = next_after(schedule, timezone, through)
    return t


def included_after(
    schedule: Schedule, timezone: str, after: datetime, exclusions: Exclusions | None
) -> Iterator[datetime]:
    """Every occurrence strictly after `after` that is not excluded, in order."""
    t = next_included(schedule, timezone, after, exclusions)
    while t is not None:
        yield t
        t = next_included(schedule, timezone, t, exclusions)


def _excluded_through(instant: datetime, timezone: str, exclusions: Exclusions) -> datetime | None:
    """None if `instant` is not excluded; else the last instant of the stretch of wall-clock time around it that its
    exclusions remove whole: the rest of its day for a date or a rule on days, of its hour or minute for a rule on
    those (each rule is matched once)."""
    tz = zone(timezone)
    wall = to_wall(instant, tz)
    units: list[_Unit] = ["day"] if wall.date() in exclusions.dates else []
    units += [_whole_unit(rule) for rule in exclusions.rules if matches_cron(rule, wall)]
    if not units:
        return None
    unit = max(units, key=_STEP_ORDER.index)
    if unit == "second":
        return instant
    start = wall.replace(microsecond=0, second=0)
    if unit in ("hour", "day"):
        start = start.replace(minute=0)
    if unit == "day":
        start = start.replace(hour=0)
    return max(instant, to_instant(start + _STEP[unit], tz) - _TICK)


def _whole_unit(rule: str) -> _Unit:
    """The widest stretch of wall-clock time a match of `rule` always covers: a rule whose finer fields are all `*`
    matches whole minutes, hours or days."""
    if rule.startswith("@"):
        return "minute"
    fields = rule.split()
    seconds, rest = (fields[0], fields[1:]) if len(fields) == 6 else ("*", fields)
    if seconds != "*":
        return "second"
    if rest[0] != "*":
        return "minute"
    if rest[1] != "*":
        return "hour"
    return "day"
