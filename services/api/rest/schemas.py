"""HTTP request and response bodies of the "Scheduler service" API (scheduler-service-api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from services.api.core.fields import (
    NO_NUL,
    AfterBody,
    ExclusionsBody,
    FlowControlBody,
    HttpMethod,
    JitterSeconds,
    MisfirePolicyBody,
    Name,
    Overlap,
    TimeZone,
    Url,
)
from shared.contracts.backfills import DEFAULT_BACKFILL_RATE, MAX_BACKFILL_RATE, MIN_BACKFILL_RATE
from shared.contracts.timers import MAX_TIMER_DELAY_SECONDS

CronText = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL, examples=["0 2 * * *"])]
# Stored as a Postgres integer.
JobType = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
ContentType = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[^\r\n\x00]+$")]
# Bounds keep a job's event (which carries all its webhooks) well under NATS's message size limit.
_Key = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=NO_NUL)]
_Value = Annotated[str, msgspec.Meta(max_length=8192, pattern=NO_NUL)]
StringMap = Annotated[dict[_Key, _Value], msgspec.Meta(max_length=64)]
BodyTemplate = Annotated[str, msgspec.Meta(max_length=65536, pattern=NO_NUL)]

T = TypeVar("T")

BackoffSeconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_TIMER_DELAY_SECONDS)]
TimeoutSeconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]


class RetryPolicyBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How failed attempts are retried. `max_attempts` counts the first attempt; the wait before attempt n + 1 is
    backoff_seconds * 2^(n-1) (exponential), * n (linear) or as is (fixed), at most max_backoff_seconds, then spread
    by +-jitter (a fraction). A receiver's Retry-After (429, 503) replaces the computed wait."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3
    backoff_seconds: BackoffSeconds = 60.0
    backoff_type: Literal["exponential", "linear", "fixed"] = "exponential"
    jitter: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    max_backoff_seconds: BackoffSeconds = 3600.0


class NewWebhook(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A webhook given with a new job in POST /api/jobs: the fields of POST /webhooks but the job_id."""

    url: Url
    method: HttpMethod = "POST"
    headers: StringMap | None = None
    query_params: StringMap | None = None
    body_template: BodyTemplate | None = None
    content_type: ContentType = "application/json"


class JobCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /api/jobs. Unknown fields are refused, so a misspelt one is not silently ignored.

    `webhooks` are attached in the same step as the job, so it never fires without them.
    """

    account_id: UUID
    name: Name
    # One of the two: a cron expression, or `after` (a link of a chain, with no times of its own).
    schedule: CronText | None = None
    after: AfterBody | None = None
    type: JobType
    timezone: TimeZone = "UTC"
    enabled: bool = True
    retry_policy: RetryPolicyBody | None = None
    timeout_seconds: TimeoutSeconds | None = None
    misfire_policy: MisfirePolicyBody | None = None
    overlap_policy: Overlap = "allow"
    jitter_seconds: JitterSeconds = 0.0
    start_at: datetime | None = None
    end_at: datetime | None = None
    exclusions: ExclusionsBody | None = None
    callback_url: Url | None = None
    failure_callback_url: Url | None = None
    flow_control: FlowControlBody | None = None
    webhooks: Annotated[list[NewWebhook], msgspec.Meta(max_length=20)] | None = None


class JobUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of PUT /api/jobs/{job_id}: any subset of the fields; the others stay as they are."""

    name: Name | UnsetType = UNSET
    # Either: a cron expression (a chained job becomes a scheduled one), or `after` (the job becomes a chain's link).
    schedule: CronText | UnsetType = UNSET
    after: AfterBody | UnsetType = UNSET
    type: JobType | UnsetType = UNSET
    timezone: TimeZone | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    retry_policy: RetryPolicyBody | UnsetType = UNSET
    # null goes back to the dispatcher's default.
    timeout_seconds: TimeoutSeconds | UnsetType | None = UNSET
    misfire_policy: MisfirePolicyBody | UnsetType = UNSET
    overlap_policy: Overlap | UnsetType = UNSET
    jitter_seconds: JitterSeconds | UnsetType = UNSET
    # null removes the bound.
    start_at: datetime | UnsetType | None = UNSET
    end_at: datetime | UnsetType | None = UNSET
    # null removes every exclusion.
    exclusions: ExclusionsBody | UnsetType | None = UNSET
    # null stops the callbacks.
    callback_url: Url | UnsetType | None = UNSET
    failure_callback_url: Url | UnsetType | None = UNSET
    # null lifts the limits.
    flow_control: FlowControlBody | UnsetType | None = UNSET


class JobOut(msgspec.Struct, kw_only=True):
    """A job as the API shows it."""

    id: UUID
    account_id: UUID
    name: str
    schedule: str
    type: int
    timezone: str
    enabled: bool
    last_run_at: datetime | None
    next_run_at: datetime | None
    created_at: datetime
    updated_at: datetime
    retry_policy: RetryPolicyBody
    timeout_seconds: float | None
    misfire_policy: MisfirePolicyBody
    overlap_policy: Overlap
    jitter_seconds: float
    start_at: datetime | None
    end_at: datetime | None
    exclusions: ExclusionsBody | None
    callback_url: str | None
    failure_callback_url: str | None
    flow_control: FlowControlBody | None
    # The job this one runs after (a chain's link; its `schedule` is then this as JSON), or null.
    after: AfterBody | None
    # Only in the answer to a POST /api/jobs that gave webhooks: them, with their ids.
    webhooks: list[WebhookOut] | UnsetType = UNSET


class WebhookCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /webhooks."""

    job_id: UUID
    url: Url
    method: HttpMethod
    headers: StringMap | None = None
    query_params: StringMap | None = None
    body_template: BodyTemplate | None = None
    content_type: ContentType = "application/json"


class WebhookUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of PUT /webhooks/{webhook_id}: any subset; null clears headers, query_params or body_template."""

    url: Url | UnsetType = UNSET
    method: HttpMethod | UnsetType = UNSET
    headers: StringMap | UnsetType | None = UNSET
    query_params: StringMap | UnsetType | None = UNSET
    body_template: BodyTemplate | UnsetType | None = UNSET
    content_type: ContentType | UnsetType = UNSET
    # true switches a webhook back on after its receiver answered 410 Gone.
    enabled: bool | UnsetType = UNSET


class WebhookOut(msgspec.Struct, kw_only=True):
    """A webhook as the API shows it."""

    id: UUID
    job_id: UUID
    url: str
    method: str
    headers: dict[str, str]
    query_params: dict[str, str] | None
    body_template: str | None
    content_type: str
    created_at: datetime
    updated_at: datetime
    enabled: bool = True
    disabled_reason: str | None = None


class ExecutionOut(msgspec.Struct, kw_only=True):
    """One delivery attempt of one occurrence."""

    id: UUID
    job_id: UUID
    webhook_id: UUID | None
    occurrence_id: str
    scheduled_at: datetime
    status: str
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    response_code: int | None
    response_body: str | None
    error: str | None
    worker_id: str | None
    duration_ms: int | None
    created_at: datetime
    retry_at: datetime | None = None
    dead_lettered_at: datetime | None = None
    # The backfill that requested it, if one did.
    backfill_id: UUID | None = None


class BackfillCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Run the job's occurrences in [start, end] that have not succeeded, at most `per_second` a second."""

    start: datetime
    end: datetime
    per_second: Annotated[int, msgspec.Meta(ge=MIN_BACKFILL_RATE, le=MAX_BACKFILL_RATE)] = DEFAULT_BACKFILL_RATE


class BackfillOut(msgspec.Struct, kw_only=True):
    """A backfill: `status` running, completed or cancelled (`reason` says why); `done` of its `total` occurrences
    walked (up to `through`); of their targets, `requested` run by it, `already_succeeded` and `in_flight` left
    alone."""

    id: UUID
    job_id: UUID
    account_id: UUID
    start: datetime
    end: datetime
    per_second: int
    status: str
    total: int
    done: int
    requested: int
    already_succeeded: int
    in_flight: int
    through: datetime | None
    reason: str | None
    requested_by: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """A page of a list with its total."""

    items: list[T]
    total: int
    skip: int
    limit: int
