"""Builders of contract objects for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts.codec import decode_job_timing, encode
from shared.contracts.executions import (
    ExecutionEvent,
    ExecutionFailed,
    ExecutionRequested,
    ExecutionStarted,
    ExecutionSucceeded,
    execution_id,
    occurrence_id,
)
from shared.contracts.job_timing import JobTimingEvent
from shared.contracts.jobs import JobCreated, JobEvent, JobState
from shared.contracts.schedules import CronSchedule

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job_state(expression: str = "* * * * *", *, enabled: bool = True, at: datetime = NOW, **fields: object) -> JobState:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "account_id": uuid.uuid4(),
        "name": "n",
        "type": 1,
        "schedule": CronSchedule(expression=expression),
        "enabled": enabled,
        "created_at": at,
        "updated_at": at,
    }
    values.update(fields)
    return JobState(**values)  # type: ignore[arg-type]


def job_created(state: JobState | None = None, *, next_run_at: datetime | None = None) -> JobCreated:
    s = state or job_state()
    return JobCreated(
        event_id=uuid.uuid4(),
        job_id=s.id,
        account_id=s.account_id,
        version=1,
        occurred_at=s.created_at,
        job=s,
        next_run_at=next_run_at,
    )


def job_following(cls: type[JobEvent], state: JobState, version: int) -> JobEvent:
    """An event of kind `cls` (paused, deleted, ...) that leaves the job as `state` at `version`."""
    return cls(
        event_id=uuid.uuid4(),
        job_id=state.id,
        account_id=state.account_id,
        version=version,
        occurred_at=NOW,
        job=state,
        next_run_at=None,
    )


def timing_of(event: JobEvent) -> JobTimingEvent:
    """The ticker's view of `event`, decoded from its message as the ticker decodes it."""
    return decode_job_timing(encode(event))


def executions_of(job: JobState, count: int, start: datetime = NOW) -> list[ExecutionEvent]:
    """`count` executions of `job` a second apart from `start`, each requested, started and finished (every second
    one failing)."""
    events: list[ExecutionEvent] = []
    for second in range(count):
        nominal = start + timedelta(seconds=second)
        occ = occurrence_id(job.id, nominal)
        common: dict[str, Any] = {
            "execution_id": execution_id(occ, None, 1), "occurrence_id": occ, "job_id": job.id,
            "account_id": job.account_id, "occurred_at": nominal,
        }  # fmt: skip
        events.append(
            ExecutionRequested(
                **common, nominal_time=nominal, job_version=1, job_name="n", webhook=None, next_run_at=None
            )
        )
        events.append(ExecutionStarted(**common, worker_id="w", started_at=nominal))
        done: dict[str, Any] = {"worker_id": "w", "started_at": nominal, "finished_at": nominal, "duration_ms": second}
        if second % 2:
            events.append(ExecutionFailed(**common, **done, error="boom"))
        else:
            events.append(ExecutionSucceeded(**common, **done, response_code=200))
    return events
