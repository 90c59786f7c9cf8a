"""HTTP request and response bodies of the "Scheduler service" API (scheduler-service-api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar
from uuid import UUID

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
HttpMethod = Literal["GET", "POST", "PUT", "DELETE", "PATCH"]
ExecutionStatus = Literal["queued", "running", "success", "failure", "timed_out", "dead_letter"]

T = TypeVar("T")


class JobCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Body of POST /api/jobs."""

    account_id: UUID
    name: Name
    schedule: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    type: int
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"
    enabled: bool = True


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


class WebhookCreate(msgspec.Struct, kw_only=True):
    """Body of POST /webhooks."""

    job_id: UUID
    url: Url
    method: HttpMethod
    headers: dict[str, str] | None = None
    query_params: dict[str, str] | None = None
    body_template: str | None = None


class WebhookOut(msgspec.Struct, kw_only=True):
    """A webhook as the API shows it."""

    id: UUID
    job_id: UUID
    url: str
    method: str
    headers: dict[str, str]
    query_params: dict[str, str] | None
    body_template: str | None
    created_at: datetime
    updated_at: datetime


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


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """A page of a list with its total."""

    items: list[T]
    total: int
    skip: int
    limit: int


class Health(msgspec.Struct, kw_only=True):
    status: str
    service: str


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error response."""

    detail: str
    error_code: str
    status_code: int
