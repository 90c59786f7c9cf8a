"""What follows one attempt of an execution, whatever ran it (a webhook call, a task): pure decisions, no I/O.

An attempt ends in an outcome. A success ends the occurrence. A failure has a fate: final or retryable, and for a
webhook whose receiver answered 410 Gone, the webhook is switched off too. Given the fate and the job's retry
policy, a failure is followed by a retry (the next attempt's request, when it is due), a dead letter, or nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

import msgspec

from shared.contracts.executions import ExecutionRequested
from shared.delivery.backoff import backoff_seconds, retry_after_seconds


class AttemptSucceeded(msgspec.Struct, frozen=True, kw_only=True):
    """The receiver answered 2xx, or the task returned `result` (any JSON value)."""

    duration_ms: int
    response_code: int | None = None
    response_body: str | None = None
    result: Any = None


class AttemptFailed(msgspec.Struct, frozen=True, kw_only=True):
    """The attempt failed, saying why (`error`).

    `retry_after`: the receiver's Retry-After header as sent. `unsendable`: the request could not even be built or
    was refused before it left (retrying cannot help).
    """

    duration_ms: int
    error: str
    timed_out: bool = False
    response_code: int | None = None
    response_body: str | None = None
    retry_after: str | None = None
    unsendable: bool = False
    traceback: str | None = None


AttemptOutcome = AttemptSucceeded | AttemptFailed


class FailureFate(msgspec.Struct, frozen=True, kw_only=True):
    """How a failed attempt is followed up.

    `retryable`: another attempt may succeed (policy permitting). `dead_letter`: when no attempt follows, the
    occurrence waits for an operator. `retry_after`: the receiver's own wait in seconds, which replaces the backoff.
    `disable_webhook`: the receiver said the webhook is gone for good; switch it off.
    """

    retryable: bool = True
    dead_letter: bool = True
    retry_after: float | None = None
    disable_webhook: bool = False


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    """The next attempt, `request`, is due at `due_at`, `delay_seconds` after the failure."""

    request: ExecutionRequested
    due_at: datetime
    delay_seconds: float


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """No attempt follows: the occurrence waits for an operator to re-drive it."""


def fate_of(request: ExecutionRequested, failed: AttemptFailed, now: datetime) -> FailureFate:
    """2xx never gets here; 410 Gone and requests that cannot be sent are final; the rest retry by policy.

    A 410 from a webhook's receiver also switches the webhook off. Retry-After (read at `now`) replaces the backoff.
    """
    gone = failed.response_code == HTTPStatus.GONE
    if failed.unsendable or gone:
        return FailureFate(retryable=False, disable_webhook=gone and request.webhook is not None)
    return FailureFate(retry_after=retry_after_seconds(failed.retry_after, now))


def after_failure(request: ExecutionRequested, fate: FailureFate, now: datetime) -> Retry | DeadLetter | None:
    """What follows a failed attempt: the next attempt while the policy allows one, else a dead letter (or nothing).

    The backoff's jitter is drawn from the failed attempt's id, so deciding twice gives the same retry.
    """
    if fate.retryable and request.attempt < request.retry.max_attempts:
        delay = fate.retry_after
        if delay is None:
            delay = backoff_seconds(request.retry, request.attempt, request.execution_id)
        return Retry(request=request.next_attempt(now), due_at=now + timedelta(seconds=delay), delay_seconds=delay)
    if fate.dead_letter:
        return DeadLetter()
    return None
