"""The webhook executor: one signed HTTP call of a request's webhook, as an attempt outcome the runtime records."""

from __future__ import annotations

from datetime import datetime

from services.dispatcher.webhook_delivery import DeliveryOutcome, deliver
from shared.bus.signing_secrets import SigningSecretStore
from shared.contracts.executions import ExecutionRequested
from shared.delivery.http_client import HttpClient
from shared.domain.attempt_outcomes import AttemptFailed, AttemptOutcome, AttemptSucceeded
from shared.observability.metrics import DELIVERIES, DELIVERY_SECONDS
from shared.settings import Settings


class WebhookExecutor:
    """Calls webhooks through `client` (whose resolver enforces the egress policy), signed with the account's
    active secrets."""

    # A webhook leaves at its instant: `started` is recorded while the call is in flight, and only for a call
    # still running after SCHEDULER_STARTED_EVENT_AFTER_SECONDS.
    records_started_first = False

    def __init__(self, client: HttpClient, secrets: SigningSecretStore, settings: Settings) -> None:
        self._client = client
        self._secrets = secrets
        self._settings = settings
        self._egress = settings.egress_policy

    async def execute(self, request: ExecutionRequested, started_at: datetime) -> AttemptOutcome:
        if request.webhook is None:
            raise ValueError(f"execution {request.execution_id} has no webhook: it is skipped, never delivered")
        secrets = (await self._secrets.get(request.account_id, started_at)).active(started_at)
        outcome = await deliver(
            self._client,
            request,
            self._timeout_of(request),
            self._settings.response_body_limit,
            secrets,
            started_at,
            self._egress,
        )
        name = "success" if outcome.error is None else "timed_out" if outcome.timed_out else "failure"
        DELIVERIES.labels(name, str(outcome.response_code or "none")).inc()
        DELIVERY_SECONDS.observe(outcome.duration_ms / 1000)
        return attempt_outcome(outcome)

    def _timeout_of(self, request: ExecutionRequested) -> float:
        wanted = request.timeout_seconds or self._settings.delivery_timeout_seconds
        return min(wanted, self._settings.max_delivery_timeout_seconds)


def attempt_outcome(outcome: DeliveryOutcome) -> AttemptOutcome:
    """What the receiver did, as the runtime's outcome of an attempt."""
    if outcome.error is None:
        return AttemptSucceeded(
            duration_ms=outcome.duration_ms, response_code=outcome.response_code, response_body=outcome.response_body
        )
    return AttemptFailed(
        duration_ms=outcome.duration_ms,
        error=outcome.error,
        timed_out=outcome.timed_out,
        response_code=outcome.response_code,
        response_body=outcome.response_body,
        retry_after=outcome.retry_after,
        unsendable=outcome.unsendable,
    )
