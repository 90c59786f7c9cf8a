"""Reading an ordered JetStream consumer in batches, cheaply.

nats-py's `next_msg` creates a task, a uuid and a `wait_for` for every message: a py-spy profile of the ticker's
start-up on 100,000 jobs (and of a replay) had that machinery as the largest cost after decoding. A callback
subscription hands messages over without it (and answers flow control itself); this reader collects them into a
buffer that `batch` takes from. A full buffer holds the callback back, so the server's flow control, not memory,
bounds how far delivery runs ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

BUFFER_LIMIT = 10_000


class GapError(Exception):
    """Messages went missing between two deliveries: read again from the last one applied.

    nats-py drops messages when a subscription's pending limits overflow (a slow consumer) after it has updated the
    ordered consumer's sequence tracking, so it does not notice the gap itself. A reader that went on would skip
    those events silently."""


class OrderedReader:
    """One ordered push consumer on `stream`, filtered by `subject`, read with `batch`."""

    def __init__(self, buffer_limit: int = BUFFER_LIMIT) -> None:
        self._buffer: deque[Msg] = deque()
        self._limit = buffer_limit
        self._arrived = asyncio.Event()
        self._taken = asyncio.Event()
        self._sub: JetStreamContext.PushSubscription | None = None
        self._last: tuple[int, int] | None = None  # (consumer sequence, stream sequence) of the last accepted
        self._gap: str | None = None

    async def subscribe(
        self,
        js: JetStreamContext,
        subject: str,
        stream: str,
        *,
        config: ConsumerConfig | None = None,
        deliver_policy: DeliverPolicy | None = None,
    ) -> OrderedReader:
        self._sub = await js.subscribe(
            subject,
            stream=stream,
            ordered_consumer=True,
            config=config,
            deliver_policy=deliver_policy,
            cb=self._receive,
        )
        return self

    async def _receive(self, msg: Msg) -> None:
        if self._gap is not None:
            return
        sequence = msg.metadata.sequence
        if self._last is not None:
            consumer, stream = self._last
            # In order: the next consumer sequence, or 1 from a consumer nats-py re-created after the last message.
            if not (sequence.consumer == consumer + 1 or (sequence.consumer == 1 and sequence.stream > stream)):
                self._gap = f"after stream sequence {stream}, got {sequence.stream} (consumer {sequence.consumer})"
                self._arrived.set()
                return
        self._last = (sequence.consumer, sequence.stream)
        while len(self._buffer) >= self._limit:
            self._taken.clear()
            await self._taken.wait()
        self._buffer.append(msg)
        self._arrived.set()

    async def batch(self, limit: int, timeout: float) -> list[Msg]:
        """Up to `limit` messages that have arrived; waits up to `timeout` for the first (empty if none came).
        Raises GapError once the messages before a gap are taken."""
        if not self._buffer and self._gap is not None:
            raise GapError(self._gap)
        if not self._buffer:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
        taken = [self._buffer.popleft() for _ in range(min(limit, len(self._buffer)))]
        if taken:
            self._taken.set()
        return taken

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None
        self._taken.set()
