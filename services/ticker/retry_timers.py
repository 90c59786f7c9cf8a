"""Durable timers: attempts due later, kept in a KV bucket (written by dispatchers and workers) and fired here.

The bucket is the timers' only home: on start the watcher replays every live key, so a restarted ticker holds
exactly the timers that have not fired. A timer is deleted only after its request is published; a crash in
between publishes it again, which the request's message id turns into a duplicate JetStream drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import nats.errors
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from shared.contracts.callbacks import CallbackRequested
from shared.contracts.executions import ExecutionRequested
from shared.contracts.timers import RetryTimer
from shared.observability.metrics import RETRIES_FIRED

log = logging.getLogger(__name__)

MAX_IDLE_SECONDS = 1.0
_decoder = msgspec.json.Decoder(RetryTimer)


def _now() -> datetime:
    return datetime.now(UTC)


class RetryTimers:
    def __init__(
        self,
        kv: KeyValue,
        publish: Callable[[ExecutionRequested | CallbackRequested], Awaitable[object]],
        owns: Callable[[str], bool] = lambda _key: True,
    ) -> None:
        self._kv = kv
        self._publish = publish
        # Whether this ticker fires the timer with this key (its partition is this ticker's).
        self._owns = owns
        self._parked: set[str] = set()
        self._heap: list[tuple[datetime, str]] = []
        self._live: dict[str, RetryTimer] = {}
        self._changed = asyncio.Event()

    async def watch(self) -> KeyValue.KeyWatcher:
        """Start following the bucket (its live keys first); `run` with the watcher fires what it holds."""
        return await self._kv.watchall()

    async def run(self, watcher: KeyValue.KeyWatcher, stop: asyncio.Event) -> None:
        """Fire timers as they fall due until `stop`; the watcher is stopped on the way out."""
        follower = asyncio.create_task(self._follow(watcher))
        try:
            while not stop.is_set():
                if follower.done():
                    follower.result()
                    raise RuntimeError("the timer watcher stopped")
                await self._fire_due()
                self._changed.clear()
                delay = MAX_IDLE_SECONDS
                if self._heap:
                    delay = min(delay, max((self._heap[0][0] - _now()).total_seconds(), 0.0))
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), delay)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            with contextlib.suppress(nats.errors.Error):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def owners_changed(self) -> None:
        """Partitions moved: look again at due timers that belonged to another ticker."""
        for key in self._parked:
            if (timer := self._live.get(key)) is not None:
                heapq.heappush(self._heap, (timer.due_at, key))
        self._parked.clear()
        self._changed.set()

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:  # the end of the initial replay
                continue
            if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                self._live.pop(entry.key, None)
                continue
            try:
                timer = _decoder.decode(entry.value)
            except msgspec.ValidationError as exc:
                log.error("ignoring an undecodable timer %s: %s", entry.key, exc)
                continue
            self._live[entry.key] = timer
            heapq.heappush(self._heap, (timer.due_at, entry.key))
            self._changed.set()

    async def _fire_due(self) -> None:
        now = _now()
        while self._heap and self._heap[0][0] <= now:
            due, key = heapq.heappop(self._heap)
            timer = self._live.get(key)
            if timer is None or timer.due_at != due:
                continue  # deleted, or rewritten with another due time (its own heap entry stands)
            if not self._owns(key):
                self._parked.add(key)  # another ticker's partition: fired there, or here once it is ours
                continue
            await self._publish(timer.request)
            RETRIES_FIRED.inc()
            await self._kv.delete(key)
            self._live.pop(key, None)
