"""HTTP bodies of the "NEXUS Scheduler" API (nexus-scheduler-api.md, fields as in compat-notes.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from services.api.core.fields import (
    CalendarInput,
    Delay,
    JitterSeconds,
    JobKind,
    MisfirePolicyBody,
    Name,
    Overlap,
    Priority,
    Retries,
    Seconds,
    ShortText,
    Tags,
    Text,
    TimeZone,
)

JobStatus = Literal["pending", "running", "completed", "failed", "cancelled", "paused"]
ExecutionState = Literal["pending", "running", "completed", "failed", "cancelled"]


class NexusJobCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/jobs/. The field of the job's type is required; the other types' fields must be empty."""

    name: Name
    description: Text | None = None
    job_type: JobKind = "cron"
    cron_expression: ShortText | None = None
    interval_seconds: Seconds | None = None
    start_time: datetime | None = None
    scheduled_time: datetime | None = None
    calendar_rule: CalendarInput | None = None
    task_name: ShortText | None = None
    task_args: list[Any] = msgspec.field(default_factory=list)
    task_kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    timezone: TimeZone = "UTC"
    is_active: bool = True
    max_retries: Retries = 3
    retry_delay: Delay = 60
    retry_backoff: bool = True
    priority: Priority = 5
    misfire_policy: MisfirePolicyBody | None = None
    overlap_policy: Overlap = "allow"
    jitter_seconds: JitterSeconds = 0.0
    start_at: datetime | None = None
    end_at: datetime | None = None
    tags: Tags = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    created_by: ShortText | None = None


class NexusJobUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """PUT /api/v1/jobs/{id}: any subset of the create fields."""

    name: Name | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET
    job_type: JobKind | UnsetType = UNSET
    cron_expression: ShortText | UnsetType | None = UNSET
    interval_seconds: Seconds | UnsetType | None = UNSET
    start_time: datetime | UnsetType | None = UNSET
    scheduled_time: datetime | UnsetType | None = UNSET
    calendar_rule: CalendarInput | UnsetType | None = UNSET
    task_name: ShortText | UnsetType | None = UNSET
    task_args: list[Any] | UnsetType = UNSET
    task_kwargs: dict[str, Any] | UnsetType = UNSET
    timezone: TimeZone | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET
    max_retries: Retries | UnsetType = UNSET
    retry_delay: Delay | UnsetType = UNSET
    retry_backoff: bool | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    misfire_policy: MisfirePolicyBody | UnsetType = UNSET
    overlap_policy: Overlap | UnsetType = UNSET
    jitter_seconds: JitterSeconds | UnsetType = UNSET
    start_at: datetime | UnsetType | None = UNSET
    end_at: datetime | UnsetType | None = UNSET
    tags: Tags | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET


class NexusJob(msgspec.Struct, kw_only=True):
    """A job on this surface. `id` is its number; `uuid` is its id on the other surface and in events."""

    id: int
    uuid: str
    name: str
    description: str | None
    job_type: JobKind
    cron_expression: str | None
    interval_seconds: int | float | None
    # When an interval job's runs are counted from (its start_time, or its creation).
    interval_anchor: datetime | None
    scheduled_time: datetime | None
    calendar_rule: dict[str, Any] | str | None
    task_name: str | None
    task_args: list[Any]
    task_kwargs: dict[str, Any]
    timezone: str
    is_active: bool
    status: JobStatus
    max_retries: int
    retry_delay: int | float
    retry_backoff: bool
    priority: int
    misfire_policy: MisfirePolicyBody
    overlap_policy: Overlap
    jitter_seconds: int | float
    start_at: datetime | None
    end_at: datetime | None
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None
    next_run_at: datetime | None
    created_by: str | None


class ExecuteRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/jobs/{id}/execute: overrides for this run only."""

    task_args: list[Any] | None = None
    task_kwargs: dict[str, Any] | None = None


class ExecuteAccepted(msgspec.Struct, kw_only=True):
    message: str
    task_id: str


class Message(msgspec.Struct, kw_only=True):
    message: str


class NexusExecution(msgspec.Struct, kw_only=True):
    """One execution. `task_id` is its id on the other surface and in events; `raw_status` the detailed status."""

    id: int
    job_id: int
    task_id: str
    status: ExecutionState
    raw_status: str
    scheduled_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: int | None  # whole seconds, rounded to the nearest
    result: Any
    error_message: str | None
    traceback: str | None
    attempt_number: int
    is_retry: bool
    worker_name: str | None
    created_at: datetime


class StatsOverview(msgspec.Struct, kw_only=True):
    total_jobs: int
    active_jobs: int
    paused_jobs: int
    total_executions: int
    successful_executions: int
    failed_executions: int
    running_executions: int
    average_duration: float
    last_24h_executions: int


class CronValidateRequest(msgspec.Struct, kw_only=True):
    expression: Annotated[str, msgspec.Meta(max_length=255)]
    timezone: TimeZone = "UTC"


class CronValidation(msgspec.Struct, kw_only=True):
    is_valid: bool
    description: str | None
    next_runs: list[datetime]
    error: str | None


class CronPreset(msgspec.Struct, kw_only=True):
    expression: str
    description: str
