"""Switching off a webhook whose receiver answered 410 Gone (what follows other failures: shared/attempts/)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from uuid import UUID

import msgspec
from nats.js import JetStreamContext

from shared.bus.executions import publish_result
from shared.bus.job_store import ConcurrencyError, JobEventStore, Loaded, append_to_latest
from shared.contracts.executions import ExecutionRequested, WebhookDisabledByReceiver, envelope_of
from shared.contracts.jobs import WebhookDisabled
from shared.contracts.subjects import Names

log = logging.getLogger(__name__)

DISABLE_ATTEMPTS = 5


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
