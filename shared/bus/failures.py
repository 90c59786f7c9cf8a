"""Switching off a webhook whose receiver answered 410 Gone (what follows other failures: shared/attempts/)."""

from __future__ import annotations

import logging
from datetime import datetime
from uuid import UUID

from nats.js import JetStreamContext

from shared.bus.executions import publish_result
from shared.bus.job_store import ConcurrencyError, JobEventStore, Loaded, append_to_latest
from shared.contracts.executions import ExecutionRequested, WebhookDisabledByReceiver, envelope_of
from shared.contracts.jobs import JobEvent
from shared.contracts.subjects import Names
from shared.domain.job_commands import DisableWebhook
from shared.domain.job_decisions import decide

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

    command = DisableWebhook(webhook_id=webhook_id, execution_id=request.execution_id, reason=reason)

    def disabled(loaded: Loaded) -> JobEvent | None:
        return decide(loaded.event, command, now)

    try:
        outcome = await append_to_latest(store, request.job_id, disabled, DISABLE_ATTEMPTS)
    except ConcurrencyError:
        log.error("could not disable webhook %s of job %s: the job kept changing", webhook_id, request.job_id)
        return
    if outcome is not None and outcome.event is not None:
        log.warning("webhook %s of job %s disabled: %s", webhook_id, request.job_id, reason)
