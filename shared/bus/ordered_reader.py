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


class OrderedReader:
    """One ordered push consumer on `stream`, filtered by `subject`, read with `batch`."""

    def __init__(self, buffer_limit: int = BUFFER_LIMIT) -> None:
        self._buffer: deque[Msg] = deque()
        self._limit = buffer_limit
        self._arrived = asyncio.Event()
        self._taken = asyncio.Event()
        self._sub: JetStreamContext.PushSubscription | None = None

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
        while len(self._buffer) >= self._limit:
            self._taken.clear()
            await self._taken.wait()
        self._buffer.append(msg)
        self._arrived.set()

    async def batch(self, limit: int, timeout: float) -> list[Msg]:
        """Up to `limit` messages that have arrived; waits up to `timeout` for the first (empty if none came)."""
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
