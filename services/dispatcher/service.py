"""The dispatcher service: takes requested executions from a shared durable consumer and delivers them.

Results are published (and stored by JetStream) before the requested message is acked; a crash in between
redelivers the message, and the deterministic message ids keep the history exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import aiohttp
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.dispatcher.consumer_config import ensure_dispatcher_consumer
from services.dispatcher.webhook_delivery import DeliveryOutcome, deliver
from shared.bus.connection import connect, disconnect
from shared.bus.executions import hand_over_task, publish_result
from shared.bus.failures import FailureFate, disable_webhook, record_failure
from shared.bus.job_store import NatsJobEventStore
from shared.bus.overlap import RunningRuns, publish_skipped, running_bucket, under_overlap_policy
from shared.bus.prioritized import PrioritizedConsumer, Slots
from shared.bus.signing_secrets import SigningSecretStore, signing_bucket
from shared.bus.streams import ensure_streams, timers_bucket
from shared.bus.withdrawals import WITHDRAWN_REASON, Withdrawals, withdrawn_bucket
from shared.contracts.executions import (
    ExecutionFailed,
    ExecutionRequested,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    envelope_of,
)
from shared.contracts.subjects import Names
from shared.delivery.backoff import retry_after_seconds
from shared.delivery.egress import GuardedResolver
from shared.observability.logs import execution_fields
from shared.observability.metrics import DELIVERIES, DELIVERY_SECONDS
from shared.settings import Settings

# An occurrence of a job with no enabled webhook: created before its webhook, or its receiver answered 410.
NO_TARGET_REASON = "nothing to deliver to: the job has no enabled webhook (add one, or enable it again)"

log = logging.getLogger(__name__)

RECORD_RETRY_SECONDS = 0.5


def _now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._names = Names(settings.namespace)
        self._nc: Client | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timers: KeyValue | None = None
        self._store: NatsJobEventStore | None = None
        self._secrets: SigningSecretStore | None = None
        self._runs: RunningRuns | None = None
        self._withdrawals: Withdrawals | None = None
        self._worker_id = settings.worker_id
        self._egress = settings.egress_policy

    async def start(self) -> None:
        self._nc = await connect(self._settings.nats_url, "dispatcher")
        js = self._nc.jetstream()
        await ensure_streams(js, self._settings)
        await ensure_dispatcher_consumer(js, self._settings)
        self._timers = await timers_bucket(js, self._settings)
        self._store = NatsJobEventStore(js, self._names)
        self._secrets = SigningSecretStore(await signing_bucket(js, self._settings))
        self._runs = RunningRuns(await running_bucket(js, self._settings))
        self._withdrawals = Withdrawals(await withdrawn_bucket(js, self._settings))
        await self._withdrawals.start()
        # The resolver lets through only addresses the egress policy allows: the address checked is the one
        # connected to. No proxy from the environment (trust_env off), which would connect on our behalf.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._settings.dispatcher_concurrency, resolver=GuardedResolver(self._egress)
            ),
            trust_env=False,
        )

    async def _handle(self, js: JetStreamContext, request: ExecutionRequested, _msg: Msg) -> None:
        if self._withdrawals is not None and request.execution_id in self._withdrawals:
            skipped = ExecutionSkipped(**envelope_of(request), occurred_at=_now(), reason=WITHDRAWN_REASON)
            await publish_result(js, self._names, "skipped", skipped, f"{request.execution_id}:skipped")
            return
        if request.task is not None:
            # Workers run tasks and record them; the dispatcher only queues them in the TASKS stream.
            await hand_over_task(js, self._names, request)
        elif request.webhook is None:
            # Nothing was sent, so nothing failed: the occurrence is recorded, saying why, and not retried.
            skipped = ExecutionSkipped(**envelope_of(request), occurred_at=_now(), reason=NO_TARGET_REASON)
            await publish_result(js, self._names, "skipped", skipped, f"{request.execution_id}:skipped")
        else:
            assert self._runs is not None
            await under_overlap_policy(
                self._runs,
                request,
                functools.partial(self._execute, js, request),
                functools.partial(publish_skipped, js, self._names, request),
                refresh_every=self._settings.ack_wait_seconds / 3,
            )

    async def _execute(self, js: JetStreamContext, request: ExecutionRequested) -> None:
        assert self._session is not None
        worker = self._worker_id
        common = envelope_of(request)
        started_at = _now()
        base = str(request.execution_id)
        # Recorded while the request goes out, not before it: the request leaves at its instant. The result is
        # published only once `started` is stored, so the two stay in order in the stream.
        started_event = ExecutionStarted(**common, occurred_at=started_at, worker_id=worker, started_at=started_at)
        started = asyncio.ensure_future(
            self._recorded(lambda: publish_result(js, self._names, "started", started_event, f"{base}:started"))
        )
        try:
            outcome = await self._deliver(request, started_at)
        finally:
            await started
        finished_at = _now()
        outcome_name = "success" if outcome.error is None else "timed_out" if outcome.timed_out else "failure"
        DELIVERIES.labels(outcome_name, str(outcome.response_code or "none")).inc()
        DELIVERY_SECONDS.observe(outcome.duration_ms / 1000)
        ended: dict[str, Any] = {
            "occurred_at": finished_at,
            "worker_id": worker,
            "started_at": started_at,
            "finished_at": finished_at,
            "duration_ms": outcome.duration_ms,
            "response_code": outcome.response_code,
            "response_body": outcome.response_body,
        }
        if outcome.error is None:
            succeeded = ExecutionSucceeded(**common, **ended)
            await self._recorded(lambda: publish_result(js, self._names, "succeeded", succeeded, f"{base}:result"))
            return
        log.info("delivery failed: %s", outcome.error, extra=execution_fields(request))
        failed = ExecutionFailed(**common, **ended, error=outcome.error, timed_out=outcome.timed_out)
        assert self._timers is not None and self._store is not None
        fate = self._fate_of(request, outcome, finished_at)
        if outcome.response_code == HTTPStatus.GONE and request.webhook is not None:
            reason = "the receiver answered 410 Gone; the webhook is disabled"
            await disable_webhook(js, self._names, self._store, request, request.webhook.id, reason, finished_at)
        await record_failure(js, self._names, self._timers, request, failed, fate, finished_at)

    async def _recorded(self, publish: Callable[[], Awaitable[None]]) -> None:
        """Publish an event of a delivery that has happened, retrying through a NATS outage: handing the message
        back instead would leave the delivery unrecorded until its ack wait ran out (the repeats are duplicates
        JetStream drops by message id)."""
        deadline = time.monotonic() + self._settings.ack_wait_seconds / 3
        while True:
            try:
                return await publish()
            except (nats.errors.Error, TimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(RECORD_RETRY_SECONDS)

    async def _deliver(self, request: ExecutionRequested, started_at: datetime) -> DeliveryOutcome:
        assert request.webhook is not None, "an occurrence without a webhook is skipped, never delivered"
        assert self._secrets is not None and self._session is not None
        secrets = (await self._secrets.get(request.account_id, started_at)).active(started_at)
        return await deliver(
            self._session,
            request,
            self._timeout_of(request),
            self._settings.response_body_limit,
            secrets,
            started_at,
            self._egress,
        )

    def _timeout_of(self, request: ExecutionRequested) -> float:
        wanted = request.timeout_seconds or self._settings.delivery_timeout_seconds
        return min(wanted, self._settings.max_delivery_timeout_seconds)

    @staticmethod
    def _fate_of(request: ExecutionRequested, outcome: DeliveryOutcome, now: datetime) -> FailureFate:
        """2xx never gets here; 410 and requests that cannot be sent are final; the rest retry by policy."""
        if outcome.unsendable or outcome.response_code == HTTPStatus.GONE:
            return FailureFate(retryable=False)
        return FailureFate(retry_after=retry_after_seconds(outcome.retry_after, now))

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and deliver until `stop` is set; in-flight deliveries finish before it returns."""
        if self._nc is None:
            await self.start()
        assert self._nc is not None
        js = self._nc.jetstream()
        sub = await js.pull_subscribe_bind(self._names.dispatcher_consumer, stream=self._names.executions_stream)
        consumer = PrioritizedConsumer(
            sub,
            functools.partial(self._handle, js),
            slots=Slots(self._settings.dispatcher_concurrency),
            lookahead=self._settings.dispatch_lookahead,
            ack_wait_seconds=self._settings.ack_wait_seconds,
            max_hold_seconds=self._settings.fire_lead_seconds,
        )
        try:
            await consumer.run(stop)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
            await self.close()

    async def close(self) -> None:
        if self._withdrawals is not None:
            await self._withdrawals.stop()
            self._withdrawals = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._nc is not None:
            await disconnect(self._nc)
            self._nc = None


def build_dispatcher(settings: Settings) -> Dispatcher:
    """Wire the dispatcher from settings; nothing connects until start()."""
    return Dispatcher(settings)


@contextlib.asynccontextmanager
async def open_dispatcher(settings: Settings) -> AsyncIterator[Dispatcher]:
    dispatcher = build_dispatcher(settings)
    await dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.close()
