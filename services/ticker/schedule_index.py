"""The ticker's in-memory index: every enabled job and its next due time, in a heap.

Pure and synchronous (no I/O), so it can be tested on its own. Stale heap entries are skipped lazily.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from shared.contracts.jobs import JobDeleted, JobEvent, JobState
from shared.schedule.occurrences import next_after


@dataclass(slots=True)
class IndexedJob:
    """A job as the ticker knows it."""

    state: JobState
    version: int
    next_due: datetime | None


@dataclass(frozen=True, slots=True)
class DueOccurrence:
    """One occurrence to publish, with the job's following due time."""

    job: JobState
    job_version: int
    nominal_time: datetime
    next_due: datetime | None


@dataclass(slots=True)
class ScheduleIndex:
    jobs: dict[UUID, IndexedJob] = field(default_factory=dict)
    _heap: list[tuple[datetime, int, UUID, int]] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    missed: int = 0

    def _push(self, job: IndexedJob) -> None:
        if job.next_due is not None:
            heapq.heappush(self._heap, (job.next_due, next(self._counter), job.state.id, job.version))

    def apply(self, event: JobEvent, start_after: datetime) -> None:
        """Take in a job event. A new, rescheduled or resumed job fires from `start_after` on."""
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
            and known.state.schedule == state.schedule
            and known.state.timezone == state.timezone
        )
        if not state.enabled:
            next_due = None
        elif unchanged and known is not None:
            next_due = known.next_due
        else:
            next_due = next_after(state.schedule, state.timezone, start_after)
        entry = IndexedJob(state=state, version=event.version, next_due=next_due)
        self.jobs[event.job_id] = entry
        self._push(entry)

    def next_due(self) -> datetime | None:
        """The earliest due time in the index (stale entries dropped first)."""
        while self._heap:
            due, _, job_id, version = self._heap[0]
            job = self.jobs.get(job_id)
            if job is not None and job.version == version and job.next_due == due:
                return due
            heapq.heappop(self._heap)
        return None

    def pop_due(self, now: datetime, grace: timedelta) -> list[DueOccurrence]:
        """Every occurrence due at or before `now`. Those older than `now - grace` are counted as missed."""
        out: list[DueOccurrence] = []
        while (due := self.next_due()) is not None and due <= now:
            _, _, job_id, _ = heapq.heappop(self._heap)
            job = self.jobs[job_id]
            state = job.state
            if due < now - grace:
                # Missed while nothing ran and beyond the grace window: jump to the first one inside it.
                job.next_due = next_after(state.schedule, state.timezone, now - grace - timedelta(microseconds=1))
                self.missed += 1
                self._push(job)
                continue
            job.next_due = next_after(state.schedule, state.timezone, due)
            out.append(DueOccurrence(state, job.version, due, job.next_due))
            self._push(job)
        return out
