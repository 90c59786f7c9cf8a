"""The ticker's in-memory index: every job of its partitions, what decides when it fires, and its next due time.

Compact: a job is indexed from the timing view of its latest event (`JobTimingEvent`), with the values many jobs
share (account, schedule, zone, misfire policy) kept once. The whole job (webhooks, body, headers) is held only
while the job is due soon: a job whose next fire is within STATE_KEPT_FOR of its last keeps it; any other gets it
again (`promote`, then `give_state`) STATE_FETCHED_AHEAD before it fires, and an occurrence whose job still has none
when it is popped is published once the caller has read the job (`DueOccurrence.state` is None).

Two heaps: `_near` for jobs that hold (or are getting) their whole state, which `pop_due` fires from, and `_far` for
the rest, from which jobs move to `_near` as their fire time comes within STATE_FETCHED_AHEAD (and always before
they are popped). Pure and synchronous (no I/O), so it can be tested on its own. Stale heap entries are skipped
lazily.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

import msgspec

from shared.contracts.job_timing import JobTimingEvent
from shared.contracts.jobs import JobState, MisfirePolicy
from shared.contracts.schedules import Exclusions, Schedule
from shared.contracts.subjects import partition_of
from shared.schedule.firing import jitter_of, next_fire, passed_date

# An occurrence found due this much after its time fell due while no ticker was looking (a restart, a stall, a
# clock jump), not merely late: the ticker wakes at each due time, so lateness beyond this means it was not there.
MISFIRE_TOLERANCE = timedelta(seconds=2)
# A long outage of a frequent job records this many missed occurrences one by one, then says there were more.
MAX_MISSED_RECORDED = 1000
_TICK = timedelta(microseconds=1)
# How far fire_latest walks past the recorded ones to find the latest missed occurrence.
MAX_CATCH_UP_WALK = 200_000
# A job due again within this long of a fire keeps its whole state (every-minute jobs are never read again).
STATE_KEPT_FOR = timedelta(seconds=120)
# Any other job's whole state is read again this long before it fires.
STATE_FETCHED_AHEAD = timedelta(seconds=30)

_Shared = TypeVar("_Shared")
# A heap entry: when the job fires, the job and its version (stale once the job moved on).
_Entry = tuple[datetime, UUID, int]
# How many next fire times `apply` remembers: jobs taken over together share a schedule and a start far more often
# than not (a million yearly jobs, one walk of the calendar).
_NEXT_FIRE_MEMO = 4096


class IndexedJob(msgspec.Struct, kw_only=True, gc=False):
    """A job as the ticker knows it: the fields `next_fire` and `jitter_of` read (so it stands for the job there),
    its misfire policy, where it is in time, and its whole state while it is due soon."""

    id: UUID
    account_id: UUID
    version: int
    schedule: Schedule
    timezone: str
    start_at: datetime | None
    end_at: datetime | None
    jitter_seconds: float
    misfire: MisfirePolicy
    # The next occurrence's nominal time (its identity); it is published later by the job's jitter (`fire_at`).
    next_due: datetime | None
    # For a job this ticker has just taken over: when its partition was last looked at (its saved watermark).
    catch_up_from: datetime | None = None
    # A date job whose time had passed when it was created or rescheduled: its one occurrence is a misfire.
    scheduled_late: bool = False
    # The whole job at `version`, while it is due soon (None: not held, or not read yet).
    state: JobState | None = None
    # In `_near` (fired from; holds or is getting its state) rather than `_far`.
    near: bool = False
    # Occurrences of the schedule the job does not have (None for almost every job).
    exclusions: Exclusions | None = None

    @property
    def fire_at(self) -> datetime | None:
        if self.next_due is None or self.jitter_seconds <= 0:
            return self.next_due
        return self.next_due + jitter_of(self, self.next_due)

    def same_timing(self, state: JobState) -> bool:
        """Whether `state` fires when this does (a later version that changed only what is delivered)."""
        return state.enabled and (
            state.schedule,
            state.timezone,
            state.start_at,
            state.end_at,
            state.jitter_seconds,
            state.misfire,
            state.exclusions,
        ) == (
            self.schedule,
            self.timezone,
            self.start_at,
            self.end_at,
            self.jitter_seconds,
            self.misfire,
            self.exclusions,
        )


@dataclass(frozen=True, slots=True)
class DueOccurrence:
    """One occurrence to publish, with the job's following due time. `state`: the whole job, None when the index
    did not hold it (the caller reads it before publishing)."""

    job: IndexedJob
    job_version: int
    nominal_time: datetime
    next_due: datetime | None
    state: JobState | None


@dataclass(frozen=True, slots=True)
class MissedOccurrence:
    """An occurrence that fell due while nothing looked and that its job's misfire policy did not fire."""

    job: IndexedJob
    job_version: int
    nominal_time: datetime
    policy: str
    reason: str
    more_missed: bool = False
    state: JobState | None = None


@dataclass(slots=True)
class ScheduleIndex:
    jobs: dict[UUID, IndexedJob] = field(default_factory=dict)
    _near: list[_Entry] = field(default_factory=list)
    _far: list[_Entry] = field(default_factory=list)
    _next_fire: dict[tuple[object, ...], datetime | None] = field(default_factory=dict)
    # One copy of each account id, schedule, zone and misfire policy that jobs share.
    _shared: dict[object, object] = field(default_factory=dict)
    missed: int = 0
    _missed: list[MissedOccurrence] = field(default_factory=list)
    kept_for: timedelta = STATE_KEPT_FOR
    fetched_ahead: timedelta = STATE_FETCHED_AHEAD

    def _one(self, value: _Shared) -> _Shared:
        return self._shared.setdefault(value, value)  # type: ignore[return-value]

    def _push(self, job: IndexedJob) -> None:
        if (fire_at := job.fire_at) is not None:
            heap = self._near if job.near else self._far
            heapq.heappush(heap, (fire_at, job.id, job.version))

    def apply(
        self,
        event: JobTimingEvent,
        start_after: datetime,
        catch_up_from: datetime | None = None,
        whole: Callable[[], JobState] | None = None,
    ) -> IndexedJob | None:
        """Take in a job event. A new, rescheduled or resumed job fires from `start_after` on. `catch_up_from`:
        the job comes from a partition taken over, last looked at then (occurrences since were missed). `whole`:
        reads the event's whole job, called (and the job kept) if the job fires within STATE_KEPT_FOR of
        `start_after`. Returns the job as indexed now (None: deleted, or older than what is indexed)."""
        known = self.jobs.get(event.job_id)
        if known is not None and event.version <= known.version:
            return None
        if event.deleted:
            self.jobs.pop(event.job_id, None)
            return None
        timing = event.job
        entry = IndexedJob(
            id=event.job_id,
            account_id=self._one(timing.account_id),
            version=event.version,
            schedule=self._one(timing.schedule),
            timezone=self._one(timing.timezone),
            start_at=timing.start_at,
            end_at=timing.end_at,
            jitter_seconds=timing.jitter_seconds,
            misfire=self._one(timing.misfire),
            next_due=None,
            catch_up_from=catch_up_from,
            exclusions=self._one(timing.exclusions),
        )
        unchanged = (
            known is not None
            and known.next_due is not None
            and (known.schedule, known.timezone, known.start_at, known.end_at, known.exclusions)
            == (entry.schedule, entry.timezone, entry.start_at, entry.end_at, entry.exclusions)
        )
        late = None
        if not timing.enabled:
            pass
        elif unchanged and known is not None:
            entry.next_due = known.next_due
        else:
            entry.next_due = self._first_after(entry, start_after)
            if entry.next_due is None and start_after <= event.occurred_at and _sets_schedule(event):
                late = passed_date(entry, event.occurred_at)
        if late is not None:  # due since before anyone looked: through the job's misfire policy
            entry.next_due, entry.catch_up_from, entry.scheduled_late = late, late - _TICK, True
        if whole is not None and (fire_at := entry.fire_at) is not None and fire_at <= start_after + self.kept_for:
            entry.state, entry.near = whole(), True
        self.jobs[event.job_id] = entry
        self._push(entry)
        return entry

    def _first_after(self, job: IndexedJob, after: datetime) -> datetime | None:
        """next_fire, remembered for the jobs that share a schedule, zone and window, and start after the same time."""
        key = (job.schedule, job.timezone, job.start_at, job.end_at, job.exclusions, after)
        try:
            return self._next_fire[key]
        except KeyError:
            pass
        if len(self._next_fire) >= _NEXT_FIRE_MEMO:
            self._next_fire.clear()
        found = self._next_fire[key] = next_fire(job, after)
        return found

    def next_due(self) -> datetime | None:
        """The earliest moment something is to be published (stale entries dropped first)."""
        near, far = self._top(self._near, near=True), self._top(self._far, near=False)
        return min((top[2] for top in (near, far) if top is not None), default=None)

    def next_fetch(self) -> datetime | None:
        """When `promote` next has a job to hand out: STATE_FETCHED_AHEAD before the first far job fires."""
        top = self._top(self._far, near=False)
        return None if top is None else top[2] - self.fetched_ahead

    def _top(self, heap: list[_Entry], near: bool) -> tuple[IndexedJob, datetime, datetime] | None:
        """The job the heap's first live entry stands for, its next occurrence's nominal time and when that is
        published; stale entries before it are dropped."""
        while heap:
            fire_at, job_id, version = heap[0]
            job = self.jobs.get(job_id)
            if (
                job is not None
                and job.version == version
                and job.near is near
                and job.next_due is not None
                and job.fire_at == fire_at
            ):
                return job, job.next_due, fire_at
            heapq.heappop(heap)
        return None

    def promote(self, until: datetime) -> list[IndexedJob]:
        """Move the jobs that fire by `until` to the near heap; those among them without their whole state, which
        the caller is to read and hand over (`give_state`)."""
        without: list[IndexedJob] = []
        while (top := self._top(self._far, near=False)) is not None and top[2] <= until:
            heapq.heappop(self._far)
            job = top[0]
            job.near = True
            self._push(job)
            if job.state is None:
                without.append(job)
        return without

    def give_state(self, state: JobState, version: int) -> bool:
        """The whole job at `version`, read for a job that is due soon; kept if that is the version indexed."""
        job = self.jobs.get(state.id)
        if job is None or job.version != version or not job.near:
            return False
        job.state = state
        return True

    def pop_due(
        self,
        now: datetime,
        default_grace: timedelta,
        looked_until: datetime | None = None,
        horizon: datetime | None = None,
    ) -> list[DueOccurrence]:
        """Every occurrence due at or before `horizon` (default `now`: published ahead by the difference) that fires.
        Occurrences that fell due after `looked_until` (when the ticker last looked) and more than
        MISFIRE_TOLERANCE before `now` were missed while nothing looked: each job's misfire policy decides which of
        them fire; the rest go to `missed` (drained by `take_missed`)."""
        out: list[DueOccurrence] = []
        missed_end = now - MISFIRE_TOLERANCE
        until = now if horizon is None else max(now, horizon)
        self.promote(until)
        kept_until = now + self.kept_for
        while (top := self._top(self._near, near=True)) is not None and top[2] <= until:
            heapq.heappop(self._near)
            job, due, _ = top
            state = job.state
            looked = job.catch_up_from or looked_until
            job.catch_up_from = None
            if looked is not None and looked < due < missed_end:
                fire, not_yet = self._misfire(job, due, now, missed_end, looked, default_grace)
                job.next_due = not_yet or next_fire(job, missed_end - _TICK)
                # Not yet due for publication (its jitter puts it after `missed_end`): it fires on time, and is
                # not taken for missed again when popped (which looped for ever when its fire time was within the
                # horizon).
                job.catch_up_from = not_yet
                out.extend(DueOccurrence(job, job.version, t, job.next_due, state) for t in fire)
            else:
                job.next_due = next_fire(job, due)
                out.append(DueOccurrence(job, job.version, due, job.next_due, state))
            if (fire_at := job.fire_at) is not None and fire_at > kept_until:  # not due soon: its state goes
                job.state, job.near = None, False
            self._push(job)
        return out

    def drop_partitions(self, partitions: frozenset[int]) -> int:
        """Forget the jobs of partitions this ticker no longer fires (one pass); how many there were."""
        gone = [job_id for job_id in self.jobs if partition_of(job_id) in partitions]
        for job_id in gone:
            del self.jobs[job_id]
        return len(gone)

    def take_missed(self) -> list[MissedOccurrence]:
        """The occurrences recorded as missed since the last call."""
        taken, self._missed = self._missed, []
        return taken

    def _misfire(
        self,
        job: IndexedJob,
        first: datetime,
        now: datetime,
        missed_end: datetime,
        looked_until: datetime,
        default_grace: timedelta,
    ) -> tuple[list[datetime], datetime | None]:
        """Apply the job's misfire policy to its occurrences in [first, missed_end). Returns those that fire, and
        the first one not due yet (its jitter puts it after `missed_end`), from which the job goes on."""
        policy = job.misfire.policy
        grace = default_grace if job.misfire.grace_seconds is None else timedelta(seconds=job.misfire.grace_seconds)
        stretch = f"no ticker was looking between {_stamp(looked_until)} and {_stamp(now)}"
        if job.scheduled_late:
            stretch = f"its time had passed when the job was scheduled ({_stamp(first)})"

        def walk(start: datetime, end: datetime, limit: int | None) -> tuple[list[datetime], bool]:
            """Occurrences in [start, end), at most `limit`; and whether there were more."""
            found: list[datetime] = []
            t = next_fire(job, start - _TICK)
            while t is not None and t < end:
                if limit is not None and len(found) >= limit:
                    return found, True
                found.append(t)
                t = next_fire(job, t)
            return found, False

        if policy == "fire_all":
            old, more = walk(first, min(now - grace, missed_end), MAX_MISSED_RECORDED)
            fire, _ = walk(max(first, now - grace), missed_end, None)
            reason = f"{stretch}; older than the {grace.total_seconds():g} s grace"
        elif policy == "fire_latest":
            old, more = walk(first, missed_end, MAX_MISSED_RECORDED)
            if more:
                # Too many to list: walk on to the latest, keeping only the last one seen.
                latest, t, steps = old[-1], next_fire(job, old[-1]), 0
                while t is not None and t < missed_end and steps < MAX_CATCH_UP_WALK:
                    latest, t, steps = t, next_fire(job, t), steps + 1
                if t is not None and t < missed_end:  # still not there: look in the last stretch, as wide as
                    # the average gap seen so far times a few
                    gap = (t - old[0]) / (len(old) + steps)
                    tail = walk(max(t, missed_end - 4 * gap), missed_end, None)[0]
                    latest = tail[-1] if tail else latest
                old.append(latest)
            fire = old[-1:]
            old = old[:-1]
            reason = f"{stretch}; only the latest fired"
        else:
            old, more = walk(first, missed_end, MAX_MISSED_RECORDED)
            fire = []
            reason = f"{stretch}; the job skips missed runs"
        # With jitter, an occurrence whose time is past may not be due for publication yet: it was not missed.
        pending = [t for t in (*old, *fire) if t + jitter_of(job, t) >= missed_end]
        if pending:
            old = [t for t in old if t < pending[0]]
            fire = [t for t in fire if t < pending[0]]
        self.missed += len(old)
        self._missed.extend(
            MissedOccurrence(job, job.version, t, policy, reason, more and i == len(old) - 1, job.state)
            for i, t in enumerate(old)
        )
        return fire, min(pending, default=None)


def _sets_schedule(event: JobTimingEvent) -> bool:
    return event.event_type == "JobCreated" or (event.event_type == "JobUpdated" and "schedule" in event.changed)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
