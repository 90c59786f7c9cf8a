"""The one place an attempt's events are published: started, result, failure, what follows a failure, skipped.

Every write is retried through a NATS outage for a bounded time: handing the request back instead would leave an
attempt that has happened unrecorded until its ack wait ran out, and the repeats are harmless (deterministic
message ids, which JetStream deduplicates, and a timer keyed by the next attempt's id).

Order matters for crash safety: a failure is published first, then the retry timer is written, then the retry is
announced; the caller acks the request only after all of it. A crash in between redelivers the request, and every
step repeats harmlessly. Callers hand the recorder events and never publish themselves, so batching the writes
(several attempts' events in one round of publishes) stays a change inside this module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from uuid import UUID

import nats.errors

from shared.attempts.sink import AttemptSink
from shared.contracts.callbacks import CallbackDelivered, CallbackFailed, CallbackRequested, callback_message_id
from shared.contracts.executions import (
    AttemptEvent,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionRequested,
    ExecutionRetryScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionWaiting,
)
from shared.contracts.timers import RetryTimer

# The pause between two tries of a write while NATS is away.
RECORD_RETRY_SECONDS = 0.5
# How long a write of an attempt's events is tried before the run is handed back to be tried again: longer than a
# reconnect to another server or a stream leader's election in a cluster. The message of a run is kept alive
# meanwhile (shared/bus/prioritized.py), so nothing else bounds it.
RECORD_FOR_SECONDS = 50.0

# What a write raises while NATS is away or restarting (a dropped connection is an OSError).
_TRANSIENT = (nats.errors.Error, TimeoutError, OSError)


class AttemptRecorder:
    """Records an attempt's events through `sink`, each write retried for up to `retry_for_seconds`."""

    def __init__(
        self,
        sink: AttemptSink,
        *,
        retry_for_seconds: float = RECORD_FOR_SECONDS,
        pause_seconds: float = RECORD_RETRY_SECONDS,
    ) -> None:
        self._sink = sink
        self._retry_for = retry_for_seconds
        self._pause = pause_seconds

    async def started(self, event: ExecutionStarted) -> None:
        await self._publish("started", event, "started")

    async def succeeded(self, event: ExecutionSucceeded) -> None:
        await self._publish("succeeded", event, "result")

    async def failed(self, event: ExecutionFailed) -> None:
        """A failure goes under `timed_out` when it timed out, so subscribers can follow timeouts alone."""
        await self._publish("timed_out" if event.timed_out else "failed", event, "result")

    async def retry_scheduled(self, timer: RetryTimer, event: ExecutionRetryScheduled) -> None:
        """Write the durable timer of the next attempt, then announce it (in that order, see the module)."""
        await self._retried(lambda: self._sink.put_timer(timer))
        await self._publish("retry_scheduled", event, "retry")

    async def dead_lettered(self, event: ExecutionDeadLettered) -> None:
        await self._publish("dead_lettered", event, "dead")

    async def skipped(self, event: ExecutionSkipped) -> None:
        await self._publish("skipped", event, "skipped")

    async def waiting(self, event: ExecutionWaiting) -> None:
        """A delivery waits for its flow-control key (published once per execution: a repeat is dropped)."""
        await self._publish("waiting", event, "waiting")

    async def callback(self, event: CallbackRequested) -> None:
        """A callback to send (its first try, or a retry a timer publishes)."""
        step = callback_message_id(event.execution_id, event.kind, event.callback_attempt, "requested")
        await self._retried(lambda: self._sink.publish("callback", event, step))

    async def callback_delivered(self, event: CallbackDelivered) -> None:
        msg_id = callback_message_id(event.execution_id, event.kind, event.callback_attempt, "delivered")
        await self._retried(lambda: self._sink.publish("callback_delivered", event, msg_id))

    async def callback_failed(self, event: CallbackFailed, retry: RetryTimer | None) -> None:
        """A try of a callback failed: the timer of the next try (if any) is written first, then the failure."""
        if retry is not None:
            await self._retried(lambda: self._sink.put_timer(retry))
        msg_id = callback_message_id(event.execution_id, event.kind, event.callback_attempt, "failed")
        await self._retried(lambda: self._sink.publish("callback_failed", event, msg_id))

    async def webhook_gone(self, request: ExecutionRequested, webhook_id: UUID, reason: str, now: datetime) -> None:
        """Switch off a webhook whose receiver answered 410 Gone (idempotent: an event id derived from the attempt)."""
        await self._retried(lambda: self._sink.disable_webhook(request, webhook_id, reason, now))

    async def _publish(self, kind: str, event: AttemptEvent, suffix: str) -> None:
        msg_id = f"{event.execution_id}:{suffix}"
        await self._retried(lambda: self._sink.publish(kind, event, msg_id))

    async def _retried(self, write: Callable[[], Awaitable[None]]) -> None:
        deadline = time.monotonic() + self._retry_for
        while True:
            try:
                return await write()
            except _TRANSIENT:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(self._pause)
