"""The dispatcher service: takes requested executions from a shared durable consumer and delivers them.

Results are published (and stored by JetStream) before the requested message is acked; a crash in between
redelivers the message, and the deterministic message ids keep the history exactly-once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TypedDict
from uuid import UUID

import aiohttp
import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.dispatcher.consumer_config import ensure_dispatcher_consumer
from services.dispatcher.webhook_delivery import DeliveryOutcome, deliver
from shared.bus.connection import connect
from shared.bus.streams import ensure_streams
from shared.contracts.codec import decode_execution_event, encode
from shared.contracts.executions import (
    ExecutionFailed,
    ExecutionRequested,
    ExecutionStarted,
    ExecutionSucceeded,
)
from shared.contracts.subjects import Names
from shared.settings import Settings

log = logging.getLogger(__name__)

FETCH_BATCH = 64
RETRY_PUBLISH_DELAY_SECONDS = 1.0


class _Envelope(TypedDict):
    """The fields every result event copies from its request."""

    execution_id: UUID
    occurrence_id: str
    job_id: UUID
    account_id: UUID
    attempt: int


def _now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._names = Names(settings.namespace)
        self._nc: Client | None = None
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._worker_id = settings.worker_id

    async def start(self) -> None:
        self._nc = await connect(self._settings.nats_url, "dispatcher")
        js = self._nc.jetstream()
        await ensure_streams(js, self._settings)
        await ensure_dispatcher_consumer(js, self._settings)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._settings.dispatcher_concurrency)
        )

    async def _publish(
        self,
        js: JetStreamContext,
        kind: str,
        event: ExecutionStarted | ExecutionSucceeded | ExecutionFailed,
        msg_id: str,
    ) -> None:
        subject = self._names.execution_subject(kind, event.account_id, event.job_id)
        await js.publish(subject, encode(event), headers={"Nats-Msg-Id": msg_id})

    async def _handle(self, js: JetStreamContext, msg: Msg) -> None:
        try:
            request = decode_execution_event(msg.data)
        except msgspec.ValidationError as exc:
            log.error("terminating undecodable message on %s: %s", msg.subject, exc)
            await msg.term()
            return
        if not isinstance(request, ExecutionRequested):
            await msg.term()
            return
        try:
            await self._execute(js, request)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            # The result could not be stored: hand the message back so another attempt records it.
            log.warning("could not record execution %s, will retry: %s", request.execution_id, exc)
            await msg.nak(delay=RETRY_PUBLISH_DELAY_SECONDS)
            return
        await msg.ack()

    async def _execute(self, js: JetStreamContext, request: ExecutionRequested) -> None:
        assert self._session is not None
        worker = self._worker_id
        common = _Envelope(
            execution_id=request.execution_id,
            occurrence_id=request.occurrence_id,
            job_id=request.job_id,
            account_id=request.account_id,
            attempt=request.attempt,
        )
        started_at = _now()
        base = str(request.execution_id)
        await self._publish(
            js,
            "started",
            ExecutionStarted(**common, occurred_at=started_at, worker_id=worker, started_at=started_at),
            f"{base}:started",
        )
        if request.webhook is None:
            outcome = DeliveryOutcome(0, error="the job has no webhook to deliver to")
        else:
            outcome = await deliver(
                self._session, request, self._settings.delivery_timeout_seconds, self._settings.response_body_limit
            )
        finished_at = _now()
        result: ExecutionSucceeded | ExecutionFailed
        if outcome.error is None:
            assert outcome.response_code is not None
            result = ExecutionSucceeded(
                **common,
                occurred_at=finished_at,
                worker_id=worker,
                started_at=started_at,
                finished_at=finished_at,
                duration_ms=outcome.duration_ms,
                response_code=outcome.response_code,
                response_body=outcome.response_body,
            )
            kind = "succeeded"
        else:
            result = ExecutionFailed(
                **common,
                occurred_at=finished_at,
                worker_id=worker,
                started_at=started_at,
                finished_at=finished_at,
                duration_ms=outcome.duration_ms,
                error=outcome.error,
                timed_out=outcome.timed_out,
                response_code=outcome.response_code,
                response_body=outcome.response_body,
            )
            kind = "failed"
        await self._publish(js, kind, result, f"{base}:result")

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and deliver until `stop` is set; in-flight deliveries finish before it returns."""
        if self._nc is None:
            await self.start()
        assert self._nc is not None
        js = self._nc.jetstream()
        consumer = self._names.dispatcher_consumer
        sub = await js.pull_subscribe_bind(consumer, stream=self._names.executions_stream)
        try:
            while not stop.is_set():
                free = self._settings.dispatcher_concurrency - len(self._in_flight)
                if free <= 0:
                    await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    msgs = await sub.fetch(min(free, FETCH_BATCH), timeout=0.5)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                for msg in msgs:
                    task = asyncio.create_task(self._handle(js, msg))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
        finally:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            await sub.unsubscribe()
            await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None


def build_dispatcher(settings: Settings) -> Dispatcher:
    """Wire the dispatcher from settings; nothing connects until start()."""
    return Dispatcher(settings)
