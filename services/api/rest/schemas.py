"""HTTP request and response bodies of the "Scheduler service" API (scheduler-service-api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType

from shared.contracts.timers import MAX_TIMER_DELAY_SECONDS

# Postgres text and jsonb cannot hold NUL, so no string may carry one into the read models.
NO_NUL = r"^[^\x00]*$"
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
CronText = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL, examples=["0 2 * * *"])]
TimeZone = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL, examples=["UTC", "America/New_York"])
]
# Stored as a Postgres integer.
JobType = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=NO_NUL)]
HttpMethod = Literal["GET", "POST", "PUT", "DELETE", "PATCH"]
ContentType = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[^\r\n\x00]+$")]
# Bounds keep a job's event (which carries all its webhooks) well under NATS's message size limit.
_Key = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=NO_NUL)]
_Value = Annotated[str, msgspec.Meta(max_length=8192, pattern=NO_NUL)]
StringMap = Annotated[dict[_Key, _Value], msgspec.Meta(max_length=64)]
BodyTemplate = Annotated[str, msgspec.Meta(max_length=65536, pattern=NO_NUL)]
ExecutionStatus = Literal["queued", "running", "success", "failure", "timed_out", "dead_letter", "missed", "skipped"]

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


class MisfirePolicyBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What happens to occurrences that fell due while no ticker was running (an outage, a stall, a clock jump):
    `fire_all` fires those at most `grace_seconds` old (null: the operator's SCHEDULER_MISFIRE_GRACE_SECONDS),
    `fire_latest` fires only the most recent, `skip` fires none. The others are recorded as `missed` executions."""

    policy: Literal["fire_all", "fire_latest", "skip"] = "fire_all"
    grace_seconds: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None


Overlap = Literal["allow", "skip", "queue_one"]
JitterSeconds = Annotated[float, msgspec.Meta(ge=0, le=3600)]


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
    schedule: CronText
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
    webhooks: Annotated[list[NewWebhook], msgspec.Meta(max_length=20)] | None = None


class JobUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of PUT /api/jobs/{job_id}: any subset of the fields; the others stay as they are."""

    name: Name | UnsetType = UNSET
    schedule: CronText | UnsetType = UNSET
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


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """A page of a list with its total."""

    items: list[T]
    total: int
    skip: int
    limit: int


class Health(msgspec.Struct, kw_only=True):
    status: str
    service: str


ConnectionState = Literal["connected", "disconnected"]
TickerState = Literal["running", "stopped", "unknown"]


class HealthDetailed(msgspec.Struct, kw_only=True):
    """One key per real dependency. `scheduler_service` is the ticker, judged by its heartbeat."""

    status: Literal["healthy", "unhealthy"]
    service: str
    database: ConnectionState
    nats: ConnectionState
    scheduler_service: TickerState
    scheduler_heartbeat_at: datetime | None


class JobCounts(msgspec.Struct, kw_only=True):
    total: int
    enabled: int
    disabled: int


class ExecutionCounts(msgspec.Struct, kw_only=True):
    """Executions by status. success_rate is success over all executions, in percent, as the document computes it."""

    total: int
    queued: int
    running: int
    success: int
    failure: int
    timed_out: int
    dead_letter: int
    success_rate: float
    avg_duration_ms: float


class Metrics(msgspec.Struct, kw_only=True):
    """GET /metrics: counts over the caller's accounts."""

    timestamp: datetime
    jobs: JobCounts
    executions: ExecutionCounts


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error response."""

    detail: str
    error_code: str
    status_code: int
