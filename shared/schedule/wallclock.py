"""Mapping wall-clock times in a time zone to instants, with the daylight-saving rules users rely on.

- A wall time that does not exist (spring forward) maps to the first valid instant after it: the transition.
- A wall time that occurs twice (fall back) maps to its first occurrence (fold=0).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.schedule.errors import InvalidTimezoneError


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; raises InvalidTimezoneError for anything else."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as exc:  # OSError: a tzdata folder ("America")
        raise InvalidTimezoneError(f"unknown time zone: {name!r}") from exc


def to_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the naive wall time `wall` first happens in `tz`."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # In a gap, fold=0 uses the offset before the transition (an instant after it) and fold=1 the offset
    # after it (an instant before it): bisect between them to the second for the transition itself.
    low = int(wall.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    high = int(first.timestamp())
    while high - low > 1:
        mid = (low + high) // 2
        if to_wall(datetime.fromtimestamp(mid, UTC), tz) < wall:
            low = mid
        else:
            high = mid
    return datetime.fromtimestamp(high, UTC)


def to_wall(instant: datetime, tz: ZoneInfo) -> datetime:
    """The naive wall time in `tz` at `instant`."""
    return instant.astimezone(tz).replace(tzinfo=None)
