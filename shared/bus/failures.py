"""What follows a failed attempt: a durable timer for the next one, or a dead letter; and switching off a webhook
whose receiver answered 410 Gone.

Order matters for crash safety: the failure is published first, then the timer is written, then the retry (or
dead letter) is announced; the caller acks the request only after all of it. A crash in between redelivers the
request, and every step repeats harmlessly (message ids and the timer's key are deterministic).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from shared.bus.executions import publish_result
from shared.bus.job_store import ConcurrencyError, JobEventStore, Loaded, append_to_latest
from shared.contracts.codec import encode
from shared.contracts.executions import (
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionRequested,
    ExecutionRetryScheduled,
    WebhookDisabledByReceiver,
    envelope_of,
)
from shared.contracts.jobs import WebhookDisabled
from shared.contracts.subjects import Names
from shared.contracts.timers import RetryTimer
from shared.delivery.backoff import backoff_seconds
from shared.observability.metrics import DEAD_LETTERS, RETRIES_SCHEDULED

log = logging.getLogger(__name__)

DISABLE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class FailureFate:
    """How a failed attempt is followed up.

    `retryable`: another attempt may succeed (policy permitting). `dead_letter`: when no attempt follows, the
    occurrence waits for an operator. `retry_after`: the receiver's own wait, which replaces the backoff.
    """

    retryable: bool = True
    dead_letter: bool = True
    retry_after: float | None = None


async def record_failure(
    js: JetStreamContext,
    names: Names,
    timers: KeyValue,
    request: ExecutionRequested,
    failed: ExecutionFailed,
    fate: FailureFate,
    now: datetime,
) -> None:
    """Publish the failure, then schedule the next attempt or dead-letter the occurrence."""
    base = str(request.execution_id)
    await publish_result(js, names, "timed_out" if failed.timed_out else "failed", failed, f"{base}:result")
    common = envelope_of(request)
    if fate.retryable and request.attempt < request.retry.max_attempts:
        delay = fate.retry_after
        if delay is None:
            delay = backoff_seconds(request.retry, request.attempt, request.execution_id)
        following = request.next_attempt(now)
        due = now + timedelta(seconds=delay)
        timer = RetryTimer(due_at=due, request=following)
        await timers.put(names.timer_key(request.job_id, following.execution_id), encode(timer))
        scheduled = ExecutionRetryScheduled(
            **common,
            occurred_at=now,
            retry_at=due,
            delay_seconds=delay,
            next_execution_id=following.execution_id,
            reason=failed.error,
        )
        await publish_result(js, names, "retry_scheduled", scheduled, f"{base}:retry")
        RETRIES_SCHEDULED.inc()
    elif fate.dead_letter:
        dead = ExecutionDeadLettered(**common, occurred_at=now, reason=failed.error)
        await publish_result(js, names, "dead_lettered", dead, f"{base}:dead")
        DEAD_LETTERS.inc()


async def disable_webhook(
    js: JetStreamContext,
    names: Names,
    store: JobEventStore,
    request: ExecutionRequested,
    webhook_id: UUID,
    reason: str,
    now: datetime,
) -> None:
    """Switch the webhook off in the job (a WebhookDisabled job event) and announce it on EXECUTIONS."""
    notice = WebhookDisabledByReceiver(**envelope_of(request), occurred_at=now, webhook_id=webhook_id, reason=reason)
    await publish_result(js, names, "webhook_disabled", notice, f"{request.execution_id}:gone")

    def disabled(loaded: Loaded) -> WebhookDisabled | None:
        state = loaded.event.job
        webhook = next((w for w in state.webhooks if w.id == webhook_id), None)
        if webhook is None or not webhook.enabled:
            return None  # removed, or already off
        off = msgspec.structs.replace(webhook, enabled=False, disabled_reason=reason, updated_at=now)
        job = msgspec.structs.replace(
            state, webhooks=tuple(off if w.id == webhook_id else w for w in state.webhooks), updated_at=now
        )
        return WebhookDisabled(
            event_id=_event_id(request.execution_id),
            job_id=state.id,
            account_id=state.account_id,
            version=loaded.event.version + 1,
            occurred_at=now,
            job=job,
            next_run_at=loaded.event.next_run_at,
            webhook_id=webhook_id,
            reason=reason,
        )

    try:
        outcome = await append_to_latest(store, request.job_id, disabled, DISABLE_ATTEMPTS)
    except ConcurrencyError:
        log.error("could not disable webhook %s of job %s: the job kept changing", webhook_id, request.job_id)
        return
    if outcome is not None and outcome.event is not None:
        log.warning("webhook %s of job %s disabled: %s", webhook_id, request.job_id, reason)


def _event_id(execution_id: UUID) -> UUID:
    # Deterministic, so a redelivered request that repeats the disable is dropped as a duplicate publish.
    return uuid.uuid5(execution_id, "webhook-disabled")
