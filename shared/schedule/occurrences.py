"""When a schedule fires: the next occurrence strictly after a given instant."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from shared.contracts.schedules import (
    AfterSchedule,
    CalendarSchedule,
    CronSchedule,
    DateSchedule,
    IntervalSchedule,
    Schedule,
)
from shared.schedule.calendar import check_calendar, walls_after
from shared.schedule.errors import InvalidCronExpressionError
from shared.schedule.wallclock import to_instant, to_wall, zone

# Far enough for "Feb 29 on a Monday"-style expressions, short enough to bound a bad one.
_MAX_YEARS_BETWEEN_MATCHES = 30


def _is_six_field(expression: str) -> bool:
    return not expression.startswith("@") and len(expression.split()) == 6


def validate_cron(expression: str) -> None:
    """Raise InvalidCronExpressionError unless `expression` has 5 fields, 6 (seconds first) or is a macro."""
    fields = expression.split()
    if not expression.startswith("@") and len(fields) not in (5, 6):
        raise InvalidCronExpressionError(
            f"cron expression must have 5 fields (or 6 with seconds first), got {len(fields)}: {expression!r}"
        )
    try:
        valid = croniter.is_valid(_normalized(expression), second_at_beginning=_is_six_field(expression))
        if valid:
            _cron(expression, datetime(2000, 1, 1)).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:
        raise InvalidCronExpressionError(f"invalid cron expression {expression!r}: {exc}") from exc
    if not valid:
        raise InvalidCronExpressionError(f"invalid cron expression: {expression!r}")


def validate_schedule(schedule: Schedule, timezone: str) -> None:
    """Check a schedule and its time zone before any event is written."""
    zone(timezone)
    if isinstance(schedule, CronSchedule):
        validate_cron(schedule.expression)
    elif isinstance(schedule, CalendarSchedule):
        check_calendar(schedule, timezone)


# croniter reads a range whose ends are equal ("5-5", "mon-mon") as "*": a one-value range is that value.
_DEGENERATE_RANGE = re.compile(r"^([0-9A-Za-z]+)-\1(?:/\d+)?$", re.IGNORECASE)


def _normalized(expression: str) -> str:
    if expression.startswith("@"):
        return expression
    return " ".join(
        ",".join(_DEGENERATE_RANGE.sub(r"\1", part) for part in field.split(",")) for field in expression.split()
    )


def _cron(expression: str, start_wall: datetime) -> croniter:
    return croniter(
        _normalized(expression),
        start_wall,
        second_at_beginning=_is_six_field(expression),
        max_years_between_matches=_MAX_YEARS_BETWEEN_MATCHES,
    )


def matches_cron(expression: str, wall: datetime) -> bool:
    """Whether the naive wall-clock time `wall` is one `expression` matches (to its minute, or to its second when it
    has 6 fields)."""
    six = _is_six_field(expression)
    return bool(
        croniter.match(_normalized(expression), wall, second_at_beginning=six, precision_in_seconds=1 if six else 60)
    )


def _cron_walls(expression: str, start: datetime) -> Iterator[datetime]:
    it = _cron(expression, start)
    while True:
        try:
            yield it.get_next(datetime)
        except (CroniterBadDateError, CroniterBadCronError):
            return


def _instants_after(walls: Iterator[datetime], tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    # Wall times come in order from the wall time at `after` (less a second); each maps to its instant. No earlier
    # wall time can map past `after` (gap times move forward only to the transition, repeated times map to their
    # first instant), and the filter below drops mapped instants not after it. Several gap times may map to one
    # instant: that instant fires once.
    last: datetime | None = None
    for wall in walls:
        instant = to_instant(wall, tz)
        if instant > after and instant != last:
            last = instant
            yield instant


def _wall_start(after: datetime, tz: ZoneInfo) -> datetime:
    return to_wall(after, tz) - timedelta(seconds=1)


@functools.lru_cache(maxsize=65_536)
def _next_cron(expression: str, timezone: str, after: datetime) -> datetime | None:
    """Cached: jobs that share a schedule share their next times, and parsing the expression is most of the cost
    (a py-spy profile of the ticker at 1,000 occurrences/s had croniter at more than half of it)."""
    tz = zone(timezone)
    return next(_instants_after(_cron_walls(expression, _wall_start(after, tz)), tz, after), None)


def next_after(schedule: Schedule, timezone: str, after: datetime) -> datetime | None:
    """The first instant strictly after `after` at which the schedule fires, or None if it never does again."""
    after = after.astimezone(UTC)
    if isinstance(schedule, CronSchedule):
        # Cron instants are whole seconds, so the next one after `after` is the next one after its whole second.
        return _next_cron(schedule.expression, timezone, after.replace(microsecond=0))
    if isinstance(schedule, CalendarSchedule):
        tz = zone(timezone)
        walls = walls_after(schedule, _wall_start(after, tz), to_wall(schedule.anchor, tz), timezone)
        return next(_instants_after(walls, tz, after), None)
    if isinstance(schedule, AfterSchedule):
        return None  # a chain's link fires when its upstream job's occurrence ends, never at a time
    if isinstance(schedule, IntervalSchedule):
        anchor = schedule.anchor.astimezone(UTC)
        if after < anchor:
            return anchor
        step = timedelta(seconds=schedule.every_seconds)
        count = math.floor((after - anchor) / step) + 1
        return anchor + count * step
    assert isinstance(schedule, DateSchedule)
    at = schedule.at.astimezone(UTC)
    return at if at > after else None


def occurrences_after(schedule: Schedule, timezone: str, after: datetime) -> Iterator[datetime]:
    """Every occurrence strictly after `after`, in order, without end. A calendar rule is walked once (each
    `next_after` walks an RRULE again from its start); past the end of the calendar it stops."""
    after = after.astimezone(UTC)
    if isinstance(schedule, CalendarSchedule):
        tz = zone(timezone)
        walls = walls_after(schedule, _wall_start(after, tz), to_wall(schedule.anchor, tz), timezone)
        try:
            yield from _instants_after(walls, tz, after)
        except OverflowError:
            return
        return
    current: datetime | None = after
    while current is not None:
        try:
            current = next_after(schedule, timezone, current)
        except OverflowError:
            return
        if current is not None:
            yield current


def occurrences_between(schedule: Schedule, timezone: str, after: datetime, until: datetime) -> Iterator[datetime]:
    """Every occurrence in (after, until], in order."""
    current = next_after(schedule, timezone, after)
    while current is not None and current <= until:
        yield current
        current = next_after(schedule, timezone, current)
