"""Execution events: the EXECUTIONS stream. One occurrence is (job id, nominal fire time)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

import msgspec

from shared.contracts.jobs import WebhookSpec

_EXECUTION_NAMESPACE = uuid.UUID("5b0d3f5e-6f43-4c8e-9a0e-2f4f1b8c7d21")


def occurrence_id(job_id: UUID, nominal_time: datetime) -> str:
    """The stable identity of one occurrence; also the `webhook-id` receivers see."""
    stamp = nominal_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{job_id}_{stamp}"


def execution_id(occurrence: str, webhook_id: UUID | None, attempt: int) -> UUID:
    """Deterministic id of one delivery attempt, so a repeated publish maps onto the same record."""
    return uuid.uuid5(_EXECUTION_NAMESPACE, f"{occurrence}|{webhook_id or '-'}|{attempt}")


class _ExecutionEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="event_type"):
    """Envelope shared by execution events."""

    schema_version: int = 1
    execution_id: UUID
    occurrence_id: str
    job_id: UUID
    account_id: UUID
    attempt: int = 1
    occurred_at: datetime


class ExecutionRequested(_ExecutionEvent, frozen=True, kw_only=True, tag=True):
    """The ticker found an occurrence due. Carries a snapshot of the target, so delivery needs no look-up.

    `job_version` is the job version the ticker fired from; `next_run_at` the job's following due time.
    """

    nominal_time: datetime
    job_version: int
    job_name: str
    webhook: WebhookSpec | None
    next_run_at: datetime | None


class ExecutionStarted(_ExecutionEvent, frozen=True, kw_only=True, tag=True):
    """A dispatcher began delivering."""

    worker_id: str
    started_at: datetime


class ExecutionSucceeded(_ExecutionEvent, frozen=True, kw_only=True, tag=True):
    """The receiver answered 2xx."""

    worker_id: str
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    response_code: int
    response_body: str | None = None


class ExecutionFailed(_ExecutionEvent, frozen=True, kw_only=True, tag=True):
    """The attempt failed: a non-2xx answer, a network error, or (timed_out) no answer in time."""

    worker_id: str
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    error: str
    timed_out: bool = False
    response_code: int | None = None
    response_body: str | None = None


ExecutionEvent = ExecutionRequested | ExecutionStarted | ExecutionSucceeded | ExecutionFailed
