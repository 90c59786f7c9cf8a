"""Withdrawing executions published ahead of their fire time.

The ticker publishes each occurrence up to SCHEDULER_FIRE_LEAD_SECONDS before it is due, and the dispatcher that
takes it waits for the instant: what is left at the instant is only the request itself, so occurrences due together
leave on time instead of queueing behind the publishing. A job paused, deleted or rescheduled inside that lead must
still not fire: the ticker writes the execution ids it published ahead for the job into this bucket, every
dispatcher follows the bucket, and one whose execution was withdrawn records it as skipped instead of delivering.
Entries expire after a few minutes: by then every withdrawn execution has passed its instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from uuid import UUID

import nats.errors
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from shared.bus.streams import kv_bucket
from shared.contracts.subjects import Names
from shared.settings import Settings

log = logging.getLogger(__name__)

WITHDRAWN_TTL_SECONDS = 300.0
WITHDRAWN_REASON = "withdrawn before its fire time: the job was paused, deleted or rescheduled"


async def withdrawn_bucket(js: JetStreamContext, settings: Settings) -> KeyValue:
    return await kv_bucket(js, settings, Names(settings.namespace).withdrawn_bucket, ttl=WITHDRAWN_TTL_SECONDS)


async def withdraw(kv: KeyValue, execution_ids: Iterable[UUID]) -> None:
    """Mark executions withdrawn (the ticker, when their job changes before their fire time)."""
    await asyncio.gather(*(kv.put(str(e), b"1") for e in execution_ids))


class Withdrawals:
    """The withdrawn execution ids, followed live from the bucket (a dispatcher's view)."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        # Execution id -> when it was seen; entries expire from the bucket silently, so they are pruned here too.
        self._ids: dict[str, float] = {}
        self._pruned = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self) -> None:
        self._watcher = await self._kv.watchall()
        self._task = asyncio.create_task(self._follow(self._watcher))

    def __contains__(self, execution_id: UUID) -> bool:
        return str(execution_id) in self._ids

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:  # the end of the initial replay
                continue
            now = time.monotonic()
            if entry.operation in (KV_DEL, KV_PURGE):
                self._ids.pop(entry.key, None)
            else:
                self._ids[entry.key] = now
            if now - self._pruned > WITHDRAWN_TTL_SECONDS:
                self._ids = {k: at for k, at in self._ids.items() if now - at < WITHDRAWN_TTL_SECONDS}
                self._pruned = now

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._watcher is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._watcher.stop()  # type: ignore[no-untyped-call]
