"""Builders of contract objects for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.contracts.codec import decode_job_timing, encode
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
