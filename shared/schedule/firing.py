"""When a job fires: its schedule, inside its start/end window, and how far its jitter moves each occurrence.

The nominal time (the occurrence's identity) never moves; jitter only delays the moment it is published, by an
amount derived from the occurrence itself, so every ticker (and a restarted one) agrees on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from shared.contracts.schedules import DateSchedule, Exclusions, Schedule
from shared.schedule.exclusions import excluded, next_included

_TICK = timedelta(microseconds=1)


class Timed(Protocol):
    """What decides when a job fires: a JobState, or the ticker's compact entry for one."""

    @property
    def id(self) -> UUID: ...
    @property
    def schedule(self) -> Schedule: ...
    @property
    def timezone(self) -> str: ...
    @property
    def start_at(self) -> datetime | None: ...
    @property
    def end_at(self) -> datetime | None: ...
    @property
    def jitter_seconds(self) -> float: ...
    @property
    def exclusions(self) -> Exclusions | None: ...


def next_fire(state: Timed, after: datetime) -> datetime | None:
    """The job's first nominal occurrence strictly after `after` within [start_at, end_at] and not excluded, if any."""
    if state.start_at is not None and after < state.start_at:
        after = state.start_at - _TICK
    try:
        t = next_included(state.schedule, state.timezone, after, state.exclusions, until=state.end_at)
    except OverflowError:  # past the end of the calendar: it never fires again
        return None
    if t is not None and state.end_at is not None and t > state.end_at:
        return None
    return t


def passed_date(state: Timed, now: datetime) -> datetime | None:
    """A date job's one occurrence if its time is not after `now` but within [start_at, end_at]: scheduled late,
    it goes through the job's misfire policy (fired at once within the grace, or recorded missed)."""
    if not isinstance(state.schedule, DateSchedule):
        return None
    at = state.schedule.at
    if (
        at > now
        or (state.start_at is not None and at < state.start_at)
        or (state.end_at is not None and at > state.end_at)
        or excluded(at, state.timezone, state.exclusions)
    ):
        return None
    return at


def jitter_of(state: Timed, nominal: datetime) -> timedelta:
    """A delay in [0, jitter_seconds) fixed by (job, nominal time): spreads jobs due at the same moment."""
    if state.jitter_seconds <= 0:
        return timedelta(0)
    digest = hashlib.blake2b(f"{state.id}|{nominal.isoformat()}".encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return timedelta(seconds=state.jitter_seconds * fraction)


def fires_between(state: Timed, start: datetime, end: datetime) -> Iterator[datetime]:
    """The job's nominal occurrences in [start, end], in order (within its window, not excluded)."""
    t = next_fire(state, start - _TICK)
    while t is not None and t <= end:
        yield t
        t = next_fire(state, t)
