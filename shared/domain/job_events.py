"""The event that follows a job's latest one: the next version, carrying the job's new complete state."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from shared.contracts.jobs import JobDeleted, JobEvent, JobState
from shared.schedule.firing import next_fire

E = TypeVar("E", bound=JobEvent)


def next_run(state: JobState, now: datetime) -> datetime | None:
    """When the job fires next after `now`; None when it is paused or never fires again."""
    return next_fire(state, now) if state.enabled else None


def following(cls: type[E], latest: JobEvent, state: JobState, now: datetime, **extra: Any) -> E:
    """The event of type `cls` that follows `latest`, with the job's new state and its next run."""
    return cls(
        event_id=uuid.uuid4(),
        job_id=state.id,
        account_id=state.account_id,
        version=latest.version + 1,
        occurred_at=now,
        job=state,
        next_run_at=None if cls is JobDeleted else next_run(state, now),
        **extra,
    )
