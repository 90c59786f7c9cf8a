"""The ticker's index as it was before the compact index (commit 700e38f), kept as the oracle of
tests/unit/test_compact_index.py: every job's whole state, one heap. Not used by the services. One fix since,
made in both: a jittered occurrence found not yet due after an outage is not taken for missed again (it looped).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from shared.contracts.jobs import JobCreated, JobDeleted, JobEvent, JobState, JobUpdated
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


@dataclass(slots=True)
class IndexedJob:
    """A job as the ticker knows it."""

    state: JobState
    version: int
    # The next occurrence's nominal time (its identity), and when it is published: later by the job's jitter.
    next_due: datetime | None
    # For a job this ticker has just taken over: when its partition was last looked at (its saved watermark).
    catch_up_from: datetime | None = None
    # A date job whose time had passed when it was created or rescheduled: its one occurrence is a misfire.
    scheduled_late: bool = False

    @property
    def fire_at(self) -> datetime | None:
        return None if self.next_due is None else self.next_due + jitter_of(self.state, self.next_due)


@dataclass(frozen=True, slots=True)
class DueOccurrence:
    """One occurrence to publish, with the job's following due time."""

    job: JobState
    job_version: int
    nominal_time: datetime
    next_due: datetime | None


@dataclass(frozen=True, slots=True)
class MissedOccurrence:
    """An occurrence that fell due while nothing looked and that its job's misfire policy did not fire."""

    job: JobState
    job_version: int
    nominal_time: datetime
    policy: str
    reason: str
    more_missed: bool = False


@dataclass(slots=True)
class ScheduleIndex:
    jobs: dict[UUID, IndexedJob] = field(default_factory=dict)
    _heap: list[tuple[datetime, int, UUID, int]] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    missed: int = 0
    _missed: list[MissedOccurrence] = field(default_factory=list)

    def _push(self, job: IndexedJob) -> None:
        if (fire_at := job.fire_at) is not None:
            heapq.heappush(self._heap, (fire_at, next(self._counter), job.state.id, job.version))

    def apply(self, event: JobEvent, start_after: datetime, catch_up_from: datetime | None = None) -> None:
        """Take in a job event. A new, rescheduled or resumed job fires from `start_after` on. `catch_up_from`:
        the job comes from a partition taken over, last looked at then (occurrences since were missed)."""
        known = self.jobs.get(event.job_id)
        if known is not None and event.version <= known.version:
            return
        if isinstance(event, JobDeleted):
            self.jobs.pop(event.job_id, None)
            return
        state = event.job
        unchanged = (
            known is not None
            and known.state.enabled
            and (known.state.schedule, known.state.timezone, known.state.start_at, known.state.end_at)
            == (state.schedule, state.timezone, state.start_at, state.end_at)
        )
        late = None
        if not state.enabled:
            next_due = None
        elif unchanged and known is not None:
            next_due = known.next_due
        else:
            next_due = next_fire(state, start_after)
            if next_due is None and start_after <= event.occurred_at and _sets_schedule(event):
                late = passed_date(state, event.occurred_at)
        if late is not None:  # due since before anyone looked: through the job's misfire policy
            next_due, catch_up_from = late, late - _TICK
        entry = IndexedJob(
            state=state,
            version=event.version,
            next_due=next_due,
            catch_up_from=catch_up_from,
            scheduled_late=late is not None,
        )
        self.jobs[event.job_id] = entry
        self._push(entry)

    def next_due(self) -> datetime | None:
        """The earliest moment something is to be published (stale entries dropped first)."""
        top = self._top()
        return None if top is None else top[2]

    def _top(self) -> tuple[IndexedJob, datetime, datetime] | None:
        """The job the heap's first live entry stands for, its next occurrence's nominal time and when that is
        published; stale entries before it are dropped."""
        while self._heap:
            fire_at, _, job_id, version = self._heap[0]
            job = self.jobs.get(job_id)
            if job is not None and job.version == version and job.next_due is not None and job.fire_at == fire_at:
                return job, job.next_due, fire_at
            heapq.heappop(self._heap)
        return None

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
        while (top := self._top()) is not None and top[2] <= until:
            heapq.heappop(self._heap)
            job, due, _ = top
            state = job.state
            looked = job.catch_up_from or looked_until
            job.catch_up_from = None
            if looked is not None and looked < due < missed_end:
                fire, not_yet = self._misfire(job, due, now, missed_end, looked, default_grace)
                job.next_due = not_yet or next_fire(state, missed_end - _TICK)
                # Not yet due for publication (its jitter puts it after `missed_end`): it fires on time, and is
                # not taken for missed again when popped (which looped for ever when its fire time was within the
                # horizon).
                job.catch_up_from = not_yet
                out.extend(DueOccurrence(state, job.version, t, job.next_due) for t in fire)
            else:
                job.next_due = next_fire(state, due)
                out.append(DueOccurrence(state, job.version, due, job.next_due))
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
        state = job.state
        policy = state.misfire.policy
        grace = default_grace if state.misfire.grace_seconds is None else timedelta(seconds=state.misfire.grace_seconds)
        stretch = f"no ticker was looking between {_stamp(looked_until)} and {_stamp(now)}"
        if job.scheduled_late:
            stretch = f"its time had passed when the job was scheduled ({_stamp(first)})"

        def walk(start: datetime, end: datetime, limit: int | None) -> tuple[list[datetime], bool]:
            """Occurrences in [start, end), at most `limit`; and whether there were more."""
            found: list[datetime] = []
            t = next_fire(state, start - _TICK)
            while t is not None and t < end:
                if limit is not None and len(found) >= limit:
                    return found, True
                found.append(t)
                t = next_fire(state, t)
            return found, False

        if policy == "fire_all":
            old, more = walk(first, min(now - grace, missed_end), MAX_MISSED_RECORDED)
            fire, _ = walk(max(first, now - grace), missed_end, None)
            reason = f"{stretch}; older than the {grace.total_seconds():g} s grace"
        elif policy == "fire_latest":
            old, more = walk(first, missed_end, MAX_MISSED_RECORDED)
            if more:
                # Too many to list: walk on to the latest, keeping only the last one seen.
                latest, t, steps = old[-1], next_fire(state, old[-1]), 0
                while t is not None and t < missed_end and steps < MAX_CATCH_UP_WALK:
                    latest, t, steps = t, next_fire(state, t), steps + 1
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
        pending = [t for t in (*old, *fire) if t + jitter_of(state, t) >= missed_end]
        if pending:
            old = [t for t in old if t < pending[0]]
            fire = [t for t in fire if t < pending[0]]
        self.missed += len(old)
        self._missed.extend(
            MissedOccurrence(state, job.version, t, policy, reason, more_missed=more and i == len(old) - 1)
            for i, t in enumerate(old)
        )
        return fire, min(pending, default=None)


def _sets_schedule(event: JobEvent) -> bool:
    return isinstance(event, JobCreated) or (isinstance(event, JobUpdated) and "schedule" in event.changed)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
