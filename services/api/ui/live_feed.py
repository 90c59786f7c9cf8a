"""Live updates for the dashboard: job and execution events from the streams, fanned out to the open pages.

Each api process reads new events of both streams with one ordered consumer per stream (started when the first page
connects). A page hears only of its own accounts' events, coalesced: many events between two sends become one
"job" and one "execution" notice. A notice is sent once the read models hold the event it announces, so the page
that re-reads on it sees the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from services.api.auth import Principal
from services.api.projection_wait import ProjectionWatcher
from shared.contracts.subjects import Names

log = logging.getLogger(__name__)

# How long a notice waits for the read models before it is sent anyway.
PROJECTION_WAIT_SECONDS = 3.0
# A comment line this often keeps idle connections open through proxies.
KEEPALIVE_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class Notice:
    """`topic` is "job" or "execution"; `sequence` is the event's position in `stream`."""

    topic: str
    stream: str
    sequence: int
    job_id: str


@dataclass(eq=False, slots=True)
class Listener:
    """One open page: the latest notice per topic not yet sent."""

    principal: Principal
    pending: dict[str, Notice] = field(default_factory=dict)
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def offer(self, account_id: UUID, notice: Notice) -> None:
        if self.principal.accounts is None or account_id in self.principal.accounts:
            self.pending[notice.topic] = notice
            self.woken.set()

    def close(self) -> None:
        self.closed = True
        self.woken.set()


class LiveFeed:
    def __init__(self, js: JetStreamContext, names: Names, watcher: ProjectionWatcher) -> None:
        self._js = js
        self._names = names
        self._watcher = watcher
        self._listeners: set[Listener] = set()
        self._subscriptions: list[JetStreamContext.PushSubscription] = []
        self._started = asyncio.Lock()
        self._closed = False

    async def _start(self) -> None:
        async with self._started:
            if self._subscriptions or self._closed:
                return
            for topic, subject, stream in (
                ("job", self._names.jobs_filter, self._names.jobs_stream),
                ("execution", self._names.executions_filter, self._names.executions_stream),
            ):
                self._subscriptions.append(
                    await self._js.subscribe(
                        subject,
                        stream=stream,
                        ordered_consumer=True,
                        deliver_policy=DeliverPolicy.NEW,
                        cb=self._receiver(topic, stream),
                    )
                )

    def _receiver(self, topic: str, stream: str) -> Callable[[Msg], Awaitable[None]]:
        async def receive(msg: Msg) -> None:
            # Subjects end in <account>.<job>: <ns>.jobs.<partition>.<account>.<job>,
            # <ns>.executions.<kind>.<account>.<job>.
            parts = msg.subject.split(".")
            try:
                account_id = UUID(parts[-2])
            except (ValueError, IndexError):
                return
            notice = Notice(topic, stream, msg.metadata.sequence.stream, parts[-1])
            for listener in self._listeners:
                listener.offer(account_id, notice)

        return receive

    def positions(self) -> dict[str, int]:
        """How far each topic's stream is projected: a page rendered now shows at least this much."""
        return {
            "job": self._watcher.position(self._names.jobs_stream),
            "execution": self._watcher.position(self._names.executions_stream),
        }

    async def notices(self, principal: Principal, seen: dict[str, int]) -> AsyncIterator[Notice | None]:
        """The notices for one page, each once the read models hold it; None when it is time for a keepalive.
        `seen` is how far the page's content went (positions() when it was rendered): a topic that moved on since
        is announced at once, so nothing that happened between the render and the connection is missed (nor
        between a dropped connection and its reconnection). Ends when the feed closes."""
        listener = Listener(principal)
        self._listeners.add(listener)
        try:
            await self._start()
            streams = {"job": self._names.jobs_stream, "execution": self._names.executions_stream}
            for topic, position in self.positions().items():
                if position > seen.get(topic, 0):
                    listener.pending.setdefault(topic, Notice(topic, streams[topic], position, ""))
                    listener.woken.set()
            while not listener.closed:
                try:
                    async with asyncio.timeout(KEEPALIVE_SECONDS):
                        await listener.woken.wait()
                except TimeoutError:
                    yield None
                    continue
                listener.woken.clear()
                batch, listener.pending = listener.pending, {}
                for notice in batch.values():
                    await self._watcher.wait_for(notice.stream, notice.sequence, PROJECTION_WAIT_SECONDS)
                    yield notice
        finally:
            self._listeners.discard(listener)

    async def close(self) -> None:
        """End every open page's stream (the server is stopping) and stop reading."""
        self._closed = True
        for listener in list(self._listeners):
            listener.close()
        for subscription in self._subscriptions:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
        self._subscriptions.clear()
