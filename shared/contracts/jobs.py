"""Job events: the JOBS stream. Each event carries the job's complete state after the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

from shared.contracts.schedules import Exclusions, Schedule


class WebhookSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how an occurrence is delivered over HTTP."""

    id: UUID
    url: str
    method: str = "POST"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    query_params: dict[str, str] | None = None
    body_template: str | None = None
    # Sent as Content-Type with a body unless `headers` names one.
    content_type: str = "application/json"
    # False once the receiver answered 410 Gone (or an operator disabled it): occurrences skip it.
    enabled: bool = True
    disabled_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A task for workers: published to a subject derived from `name`, run with `args` and `kwargs`."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How a failed attempt is retried. `max_attempts` counts the first attempt.

    The delay before attempt n + 1 is base * 2^(n-1) (exponential), base * n (linear) or base (fixed), at most
    `max_delay_seconds`, spread by +-`jitter` (a fraction).
    """

    max_attempts: int = 3
    base_delay_seconds: float = 60.0
    backoff: Literal["exponential", "linear", "fixed"] = "exponential"
    jitter: float = 0.0
    max_delay_seconds: float = 3600.0


class MisfirePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """What happens to occurrences that fell due while no ticker was looking (downtime, a stall, a clock jump).

    `fire_all`: those at most `grace_seconds` old fire (None: the operator's default), older ones are missed.
    `fire_latest`: only the most recent fires. `skip`: none fires. Every one that does not fire is recorded as
    missed (ExecutionMissed).
    """

    policy: Literal["fire_all", "fire_latest", "skip"] = "fire_all"
    grace_seconds: float | None = None


class FlowControl(msgspec.Struct, frozen=True, kw_only=True):
    """Limits on a job's webhook deliveries, shared by every job of the account naming the same `key` (the account's
    name for a destination): at most `parallelism` in flight, at most `rate` started per `period_seconds`. A delivery
    over a limit waits (see shared/bus/flow_control.py); each delivery is held to its own job's limits."""

    key: str
    parallelism: int | None = None
    rate: int | None = None
    period_seconds: float = 1.0


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    """The whole job as of one event.

    `type` is the Scheduler-service client's own job type number. A job delivers to its `webhooks`, or runs `task`.
    `priority` (1..10) orders occurrences due at the same moment, higher first.
    """

    id: UUID
    account_id: UUID
    name: str
    type: int
    schedule: Schedule
    timezone: str = "UTC"
    enabled: bool = True
    webhooks: tuple[WebhookSpec, ...] = ()
    task: TaskSpec | None = None
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    # Per-attempt limit for a webhook delivery; None means the dispatcher's default.
    timeout_seconds: float | None = None
    priority: int = 5
    misfire: MisfirePolicy = msgspec.field(default_factory=MisfirePolicy)
    # Occurrences before start_at or after end_at do not fire. Each occurrence is published up to
    # jitter_seconds after its nominal time (a fixed amount per occurrence), to spread jobs due together.
    start_at: datetime | None = None
    end_at: datetime | None = None
    jitter_seconds: float = 0.0
    # When an occurrence comes due while the job's previous one is still being delivered (per webhook, or the
    # task): run it anyway, skip it (recorded as skipped), or hold one until the previous finishes.
    overlap: Literal["allow", "skip", "queue_one"] = "allow"
    # Occurrences of the schedule the job does not have (days, or cron rules on its wall-clock time); None: none.
    exclusions: Exclusions | None = None
    # Sent each attempt's outcome (`callback_url`) and each dead letter (`failure_callback_url`): see
    # shared/contracts/callbacks.py.
    callback_url: str | None = None
    failure_callback_url: str | None = None
    # Limits on its webhook deliveries, shared with the account's other jobs of the same key; None: none.
    flow_control: FlowControl | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    created_by: str | None = None
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


class WebhookDisabled(_JobEvent, frozen=True, kw_only=True, tag=True):
    """A webhook was switched off because its receiver answered 410 Gone; `reason` says so."""

    webhook_id: UUID
    reason: str


JobEvent = (
    JobCreated
    | JobUpdated
    | JobPaused
    | JobResumed
    | JobDeleted
    | WebhookAdded
    | WebhookUpdated
    | WebhookRemoved
    | WebhookDisabled
)
