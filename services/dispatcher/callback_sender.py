"""Sending result and failure callbacks: one signed POST of the outcome as JSON, through the same client and egress
guard as webhooks; a failed try is retried by a durable timer, up to CALLBACK_ATTEMPTS tries in all."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import msgspec
from multidict import CIMultiDict
from yarl import URL

from services.dispatcher.webhook_delivery import USER_AGENT, DeliveryOutcome, send
from shared.attempts.recorder import AttemptRecorder
from shared.bus.signing_secrets import SigningSecretStore
from shared.contracts.callbacks import (
    CALLBACK_ATTEMPTS,
    CALLBACK_MAX_DELAY_SECONDS,
    CallbackDelivered,
    CallbackFailed,
    CallbackRequested,
    callback_webhook_id,
)
from shared.contracts.executions import envelope_of
from shared.contracts.timers import RetryTimer
from shared.delivery.http_client import HttpClient
from shared.delivery.signing import signature_headers
from shared.observability.logs import execution_fields
from shared.observability.metrics import CALLBACKS
from shared.settings import Settings

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()


def callback_delay_seconds(base: float, callback_attempt: int) -> float:
    """The wait before try `callback_attempt + 1`: base, then twice as long each time, at most 30 minutes."""
    return float(min(base * 2 ** (callback_attempt - 1), CALLBACK_MAX_DELAY_SECONDS))


class CallbackSender:
    """Sends one try of a callback and records how it went (and the timer of the next try, if one follows)."""

    def __init__(
        self, client: HttpClient, secrets: SigningSecretStore, recorder: AttemptRecorder, settings: Settings
    ) -> None:
        self._client = client
        self._secrets = secrets
        self._recorder = recorder
        self._settings = settings

    async def send(self, callback: CallbackRequested) -> None:
        now = datetime.now(UTC)
        outcome = await self._try(callback, now)
        # What the try's event says either way; a failure adds why, and when the next try is due.
        delivered = CallbackDelivered(
            **envelope_of(callback),
            occurred_at=datetime.now(UTC),
            kind=callback.kind,
            url=callback.url,
            callback_attempt=callback.callback_attempt,
            response_code=outcome.response_code,
            duration_ms=outcome.duration_ms,
        )
        if outcome.error is None:
            await self._recorder.callback_delivered(delivered)
            CALLBACKS.labels(callback.kind, "delivered").inc()
            return
        log.info("callback %s failed: %s", callback.kind, outcome.error, extra=execution_fields(callback))
        retry: RetryTimer | None = None
        if not outcome.unsendable and callback.callback_attempt < CALLBACK_ATTEMPTS:
            delay = callback_delay_seconds(self._settings.callback_retry_base_seconds, callback.callback_attempt)
            due = now + timedelta(seconds=delay)
            retry = RetryTimer(
                due_at=due,
                request=msgspec.structs.replace(
                    callback, callback_attempt=callback.callback_attempt + 1, occurred_at=due
                ),
            )
        failed = CallbackFailed(
            **msgspec.structs.asdict(delivered),
            error=outcome.error,
            retry_at=retry.due_at if retry else None,
            final=retry is None,
        )
        await self._recorder.callback_failed(failed, retry)
        CALLBACKS.labels(callback.kind, "retrying" if retry else "failed").inc()

    async def _try(self, callback: CallbackRequested, now: datetime) -> DeliveryOutcome:
        started = time.monotonic()
        body = _encoder.encode(callback.body)
        webhook_id = callback_webhook_id(callback.execution_id, callback.kind)
        headers = CIMultiDict({"User-Agent": USER_AGENT, "Content-Type": "application/json", "webhook-id": webhook_id})
        secrets = (await self._secrets.get(callback.account_id, now)).active(now)
        if secrets:
            headers.update(signature_headers(secrets, webhook_id, now, body.decode()))
        try:
            url = URL(callback.url)
        except ValueError as exc:
            return DeliveryOutcome(0, error=f"the callback URL cannot be used: {exc}", unsendable=True)
        timeout = min(self._settings.delivery_timeout_seconds, self._settings.max_delivery_timeout_seconds)
        return await send(
            self._client,
            "POST",
            url,
            headers,
            body,
            timeout,
            self._settings.response_body_limit,
            self._settings.egress_policy,
            started,
        )
