"""Commands on a job: frozen values that say what to do, decided against the job's latest event (see
job_decisions.decide). Ids that must stay the same when a decision is retried after a lost race are given here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from shared.contracts.jobs import FlowControl, MisfirePolicy, RetryPolicy, TaskSpec
from shared.contracts.schedules import Exclusions, Schedule
from shared.domain.job_patches import JobChanges, WebhookChanges


@dataclass(frozen=True, slots=True)
class WebhookDraft:
    """A webhook to attach to a job, with a new job or on its own."""

    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    query_params: dict[str, str] | None = None
    body_template: str | None = None
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class JobDraft:
    """A new job, as either API describes it."""

    name: str
    schedule: Schedule
    timezone: str = "UTC"
    enabled: bool = True
    type: int = 0
    task: TaskSpec | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_seconds: float | None = None
    misfire: MisfirePolicy = field(default_factory=MisfirePolicy)
    overlap: Literal["allow", "skip", "queue_one"] = "allow"
    jitter_seconds: float = 0.0
    start_at: datetime | None = None
    end_at: datetime | None = None
    exclusions: Exclusions | None = None
    callback_url: str | None = None
    failure_callback_url: str | None = None
    flow_control: FlowControl | None = None
    priority: int = 5
    description: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    created_by: str | None = None
    # Attached in the same event as the job, so no occurrence fires before its webhooks exist.
    webhooks: tuple[WebhookDraft, ...] = ()


@dataclass(frozen=True, slots=True)
class CreateJob:
    """Create a job in an account, with its webhooks. `require_target`: refuse an active job with nothing to run
    (for surfaces without webhooks of their own). `max_timeout_seconds`: the operator's limit on a per-attempt
    timeout (None: none). `job_id` and `event_id` are fresh unless a caller's idempotency key gives them, so that
    a retried create is the same append (see services/api/core/idempotency.py)."""

    account_id: UUID
    draft: JobDraft
    require_target: bool = False
    max_timeout_seconds: float | None = None
    job_id: UUID = field(default_factory=uuid.uuid4)
    event_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class ChangeJob:
    """Change any subset of a job's fields; patches apply to the job as it is when the change is decided.
    `require_target` and `max_timeout_seconds` as for CreateJob."""

    changes: JobChanges
    require_target: bool = False
    max_timeout_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class PauseJob:
    """Stop a job firing until it is resumed; pausing a paused job changes nothing."""


@dataclass(frozen=True, slots=True)
class ResumeJob:
    """Let a paused job fire again; resuming an active job changes nothing. `require_target` as for CreateJob."""

    require_target: bool = False


@dataclass(frozen=True, slots=True)
class DeleteJob:
    """The job stops firing and leaves the read models; its events stay in the log."""


@dataclass(frozen=True, slots=True)
class AddWebhook:
    """Attach a webhook to a job."""

    draft: WebhookDraft
    webhook_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class ChangeWebhook:
    """Change any subset of a webhook's fields; enabling it clears why it was disabled."""

    webhook_id: UUID
    changes: WebhookChanges


@dataclass(frozen=True, slots=True)
class RemoveWebhook:
    """Detach a webhook from a job."""

    webhook_id: UUID


@dataclass(frozen=True, slots=True)
class DisableWebhook:
    """Switch a webhook off because its receiver answered an attempt (`execution_id`) with 410 Gone. Idempotent:
    a webhook already off, or removed, changes nothing; the event id derives from the attempt, so a repeat of the
    same attempt's disable is one event."""

    webhook_id: UUID
    execution_id: UUID
    reason: str


JobCommand = (
    CreateJob
    | ChangeJob
    | PauseJob
    | ResumeJob
    | DeleteJob
    | AddWebhook
    | ChangeWebhook
    | RemoveWebhook
    | DisableWebhook
)
