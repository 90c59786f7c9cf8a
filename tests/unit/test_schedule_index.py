"""The ticker's index, without any I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from services.ticker.schedule_index import ScheduleIndex
from shared.contracts.jobs import JobCreated, JobDeleted, JobPaused, JobResumed, JobState, JobUpdated
from tests.factories import job_created, job_state

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
GRACE = timedelta(seconds=60)


def state(expression: str = "* * * * * *", enabled: bool = True) -> JobState:
    return job_state(expression, enabled=enabled, at=T0)


def created(s: JobState) -> JobCreated:
    return job_created(s)


def test_due_occurrences_pop_in_order_and_advance() -> None:
    index = ScheduleIndex()
    s = state()
    index.apply(created(s), T0)
    due = index.pop_due(T0 + timedelta(seconds=3), GRACE)
    assert [d.nominal_time for d in due] == [T0 + timedelta(seconds=i) for i in (1, 2, 3)]
    assert due[-1].next_due == T0 + timedelta(seconds=4)
    assert index.next_due() == T0 + timedelta(seconds=4)
    assert index.pop_due(T0 + timedelta(seconds=3), GRACE) == []


def test_paused_and_deleted_jobs_do_not_fire() -> None:
    index = ScheduleIndex()
    s = state()
    index.apply(created(s), T0)
    paused = JobPaused(
        event_id=uuid.uuid4(),
        job_id=s.id,
        account_id=s.account_id,
        version=2,
        occurred_at=T0,
        job=msgspec.structs.replace(s, enabled=False),
        next_run_at=None,
    )
    index.apply(paused, T0)
    assert index.pop_due(T0 + timedelta(seconds=5), GRACE) == []
    resumed = JobResumed(
        event_id=uuid.uuid4(),
        job_id=s.id,
        account_id=s.account_id,
        version=3,
        occurred_at=T0 + timedelta(seconds=5),
        job=s,
        next_run_at=None,
    )
    index.apply(resumed, T0 + timedelta(seconds=5))
    assert [d.nominal_time for d in index.pop_due(T0 + timedelta(seconds=6), GRACE)] == [T0 + timedelta(seconds=6)]
    deleted = JobDeleted(
        event_id=uuid.uuid4(), job_id=s.id, account_id=s.account_id, version=4, occurred_at=T0, job=s, next_run_at=None
    )
    index.apply(deleted, T0)
    assert index.pop_due(T0 + timedelta(seconds=60), GRACE) == []
    assert s.id not in index.jobs


def test_stale_versions_are_ignored_and_unchanged_schedules_keep_their_next_due() -> None:
    index = ScheduleIndex()
    s = state()
    index.apply(created(s), T0)
    renamed = JobUpdated(
        event_id=uuid.uuid4(),
        job_id=s.id,
        account_id=s.account_id,
        version=2,
        occurred_at=T0 + timedelta(seconds=30),
        job=msgspec.structs.replace(s, name="renamed"),
        next_run_at=None,
    )
    index.apply(renamed, T0 + timedelta(seconds=30))
    assert index.next_due() == T0 + timedelta(seconds=1)
    index.apply(created(s), T0)  # an old version arriving late changes nothing
    assert index.jobs[s.id].state.name == "renamed"


def test_occurrences_older_than_the_grace_window_are_counted_missed() -> None:
    index = ScheduleIndex()
    s = state()
    index.apply(created(s), T0)
    now = T0 + timedelta(minutes=10)
    due = index.pop_due(now, GRACE)
    assert index.missed == 1
    assert [d.nominal_time for d in due] == [now - GRACE + timedelta(seconds=i) for i in range(0, 61)]
