"""Where the recorder writes: the EXECUTIONS stream, the timers bucket, and the job of a webhook gone for good.

`JetStreamSink` is the real one; `shared.attempts.memory_sink.InMemoryAttemptSink` is its in-memory twin.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Protocol
from uuid import UUID

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from shared.bus.executions import result_message
from shared.bus.failures import disable_webhook
from shared.bus.job_store import JobEventStore, NatsJobEventStore
from shared.bus.pipelined import AckedPublisher
from shared.bus.streams import timers_bucket
from shared.contracts.codec import encode
from shared.contracts.executions import ExecutionEvent, ExecutionRequested
from shared.contracts.subjects import Names
from shared.contracts.timers import RetryTimer, timer_name
from shared.observability import tracing
from shared.settings import Settings


class AttemptSink(Protocol):
    """Each write is idempotent: a repeat (same message id, same timer) changes nothing."""

    async def publish(self, kind: str, event: ExecutionEvent, msg_id: str) -> None:
        """Publish an execution event under subject kind `kind`, deduplicated by `msg_id`."""
        ...

    async def put_timer(self, timer: RetryTimer) -> None:
        """Write the durable timer that fires `timer.request` at `timer.due_at`."""
        ...

    async def disable_webhook(self, request: ExecutionRequested, webhook_id: UUID, reason: str, now: datetime) -> None:
        """Switch the webhook off in its job and announce it."""
        ...


class JetStreamSink:
    """Events to the EXECUTIONS stream, timers to the timers bucket, the 410 path through the job store."""

    def __init__(self, js: JetStreamContext, names: Names, timers: KeyValue, store: JobEventStore) -> None:
        self._js = js
        self._names = names
        self._timers = timers
        self._store = store
        # Many attempts publish at once: their events go out without a request (and its timer) each.
        self._publisher = AckedPublisher(js)

    async def publish(self, kind: str, event: ExecutionEvent, msg_id: str) -> None:
        message = result_message(self._names, kind, event, msg_id)
        if tracing.enabled():  # the delivery's trace goes on with what it published (a wait, a result)
            message = dataclasses.replace(message, extra=tracing.carried())
        await self._publisher.publish(message)

    async def put_timer(self, timer: RetryTimer) -> None:
        key = self._names.timer_key(timer.request.job_id, timer_name(timer.request))
        await self._timers.put(key, encode(timer))

    async def disable_webhook(self, request: ExecutionRequested, webhook_id: UUID, reason: str, now: datetime) -> None:
        await disable_webhook(self._js, self._names, self._store, request, webhook_id, reason, now)


async def open_jetstream_sink(js: JetStreamContext, settings: Settings) -> JetStreamSink:
    """The sink of a connected process (the timers bucket is created when missing)."""
    names = Names(settings.namespace)
    return JetStreamSink(js, names, await timers_bucket(js, settings), NatsJobEventStore(js, names))
