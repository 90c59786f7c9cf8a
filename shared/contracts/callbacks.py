"""Result callbacks: an attempt's outcome (and an occurrence's dead letter) sent to a URL of the job's, as events of
the EXECUTIONS stream.

A callback is a delivery of its own: `CallbackRequested` is published once the attempt's outcome is recorded, taken
by the dispatchers' callback consumer, and ends as `CallbackDelivered` or, after its retries, a final
`CallbackFailed`. Its envelope is the attempt's (execution id, occurrence, job, account, attempt).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

from shared.contracts.execution_envelope import ExecutionEnvelope

# A callback is tried at most this many times, the n-th retry after base * 2^(n-1) seconds, at most MAX_DELAY.
CALLBACK_ATTEMPTS = 6
CALLBACK_MAX_DELAY_SECONDS = 1800.0

CallbackKind = Literal["result", "failure"]


class CallbackBody(msgspec.Struct, frozen=True, kw_only=True):
    """What a callback's receiver gets (JSON): the attempt as the API shows an execution, and what follows it.

    `status`: success, failure or timed_out for a result callback; dead_letter for a failure callback. `final`: no
    further attempt of the occurrence follows (a success, or a failure that was the last one); `retry_at`: when the
    next attempt is due, if one is.
    """

    kind: CallbackKind
    id: UUID
    job_id: UUID
    job_name: str
    account_id: UUID
    webhook_id: UUID | None
    occurrence_id: str
    scheduled_at: datetime
    status: str
    attempt: int
    final: bool
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    response_code: int | None = None
    response_body: str | None = None
    error: str | None = None
    result: Any = None
    retry_at: datetime | None = None
    dead_lettered_at: datetime | None = None


class CallbackRequested(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """Send `body` to `url` (attempt `callback_attempt` of the callback); a retry is this event again, published by
    the timer that held it, with the next number."""

    kind: CallbackKind
    url: str
    callback_attempt: int = 1
    body: CallbackBody


class CallbackDelivered(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """The callback's receiver answered 2xx."""

    kind: CallbackKind
    url: str
    callback_attempt: int
    response_code: int | None
    duration_ms: int


class CallbackFailed(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """One try of a callback failed; `retry_at` says when the next is due, or None when it is given up (`final`)."""

    kind: CallbackKind
    url: str
    callback_attempt: int
    error: str
    response_code: int | None = None
    duration_ms: int
    retry_at: datetime | None = None
    final: bool = False


def callback_message_id(execution_id: UUID, kind: CallbackKind, callback_attempt: int, step: str) -> str:
    """The `Nats-Msg-Id` of one step (requested, delivered, failed) of one try of a callback: repeats are dropped."""
    return f"{execution_id}:callback.{kind}.{callback_attempt}.{step}"


def callback_webhook_id(execution_id: UUID, kind: CallbackKind) -> str:
    """The `webhook-id` a callback's receiver sees: the same on every try, so it deduplicates as it does
    deliveries."""
    return f"{execution_id}.{'callback' if kind == 'result' else 'failure'}"
