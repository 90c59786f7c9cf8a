"""Job events: the JOBS stream. Each event carries the job's complete state after the change."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from shared.contracts.schedules import Schedule


class WebhookSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how an occurrence is delivered over HTTP."""

    id: UUID
    url: str
    method: str = "POST"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    query_params: dict[str, str] | None = None
    body_template: str | None = None
    created_at: datetime
    updated_at: datetime


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    """The whole job as of one event. `type` is the client's own job type number."""

    id: UUID
    account_id: UUID
    name: str
    type: int
    schedule: Schedule
    timezone: str = "UTC"
    enabled: bool = True
    webhooks: tuple[WebhookSpec, ...] = ()
    created_at: datetime
    updated_at: datetime


class _JobEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="event_type"):
    """Envelope shared by job events: aggregate id, aggregate version, UTC time, full state.

    `next_run_at` is the next due time computed when the event was written (None when the job will not fire),
    so read models never evaluate schedules themselves.
    """

    schema_version: int = 1
    event_id: UUID
    job_id: UUID
    account_id: UUID
    version: int
    occurred_at: datetime
    job: JobState
    next_run_at: datetime | None


class JobCreated(_JobEvent, frozen=True, kw_only=True, tag=True):
    """A job was created."""


class JobUpdated(_JobEvent, frozen=True, kw_only=True, tag=True):
    """Some of a job's fields changed; `changed` names them."""

    changed: tuple[str, ...] = ()


class JobPaused(_JobEvent, frozen=True, kw_only=True, tag=True):
    """A job was disabled: it stops firing until resumed."""


class JobResumed(_JobEvent, frozen=True, kw_only=True, tag=True):
    """A disabled job was enabled again."""


class JobDeleted(_JobEvent, frozen=True, kw_only=True, tag=True):
    """A job was deleted. Its state is the last one it had; its events stay in the log."""


class WebhookAdded(_JobEvent, frozen=True, kw_only=True, tag=True):
    """A webhook was attached to the job."""

    webhook_id: UUID


class WebhookUpdated(_JobEvent, frozen=True, kw_only=True, tag=True):
    """A webhook of the job changed."""

    webhook_id: UUID
    changed: tuple[str, ...] = ()


class WebhookRemoved(_JobEvent, frozen=True, kw_only=True, tag=True):
    """A webhook was detached from the job."""

    webhook_id: UUID


JobEvent = (
    JobCreated | JobUpdated | JobPaused | JobResumed | JobDeleted | WebhookAdded | WebhookUpdated | WebhookRemoved
)
