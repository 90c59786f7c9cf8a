"""Live updates for the dashboard: job and execution events from the streams, fanned out to the open pages.

Each api process reads new events of both streams with one ordered consumer per stream (started when the first page
connects). A page hears only of its own accounts' events, coalesced: many events between two sends become one
"job" and one "execution" notice, and a page hears at most one batch of notices per PACE_SECONDS. The pace keeps the
last word: a notice that comes within the pace is sent when it ends, never dropped (htmx's `throttle` drops it, so
a run whose result followed its request within the throttle left the page showing the request). A notice is sent
once the read models hold the event it announces, so the page that re-reads on it sees the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from services.api.core.auth import Principal
from services.api.core.projection_wait import ProjectionWatcher
from shared.bus.ordered_reader import sequences
from shared.contracts.subjects import Names

log = logging.getLogger(__name__)

# How long a notice waits for the read models before it is sent anyway.
PROJECTION_WAIT_SECONDS = 3.0
# A comment line this often keeps idle connections open through proxies.
KEEPALIVE_SECONDS = 15.0
# With no page open this long, the feed stops reading the streams.
UNUSED_STOP_SECONDS = 60.0
# A page hears at most one batch of notices this often (the first at once, the rest at the end of the pace).
PACE_SECONDS = 1.0


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
        self._watcher = watcher
        self._streams = {"job": names.jobs_stream, "execution": names.executions_stream}  # by topic
        self._filters = {"job": names.jobs_filter, "execution": names.executions_filter}
        self._listeners: set[Listener] = set()
        self._subscriptions: list[JetStreamContext.PushSubscription] = []
        # The last sequence read of each topic's stream: a page that connects after an event was read but before it
        # was projected hears of it by this (it was offered to the pages open then, not to this one).
        self._read: dict[str, int] = {}
        self._lock = asyncio.Lock()  # subscribing and unsubscribing, one at a time
        self._stopper: asyncio.Task[None] | None = None  # stops reading once no page has been open a while
        self._closed = False

    async def _start(self) -> None:
        """Read both streams, or neither: a half-made start is undone, so the next page tries again."""
        async with self._lock:
            if self._subscriptions or self._closed:
                return
            made: list[JetStreamContext.PushSubscription] = []
            try:
                for topic, stream in self._streams.items():
                    made.append(
                        await self._js.subscribe(
                            self._filters[topic],
                            stream=stream,
                            ordered_consumer=True,
                            deliver_policy=DeliverPolicy.NEW,
                            cb=self._receiver(topic, stream),
                        )
                    )
            except BaseException:
                await self._unsubscribe(made)
                raise
            self._subscriptions = made

    async def _stop_if_unused(self, after: float) -> None:
        """No page has been open for `after` seconds: stop reading until one opens."""
        await asyncio.sleep(after)
        async with self._lock:
            if not self._listeners and self._subscriptions:
                await self._unsubscribe(self._subscriptions)
                self._subscriptions = []

    def _cancel_stopper(self) -> None:
        if self._stopper is not None:
            self._stopper.cancel()
            self._stopper = None

    @staticmethod
    async def _unsubscribe(subscriptions: list[JetStreamContext.PushSubscription]) -> None:
        for subscription in subscriptions:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    def _receiver(self, topic: str, stream: str) -> Callable[[Msg], Awaitable[None]]:
        async def receive(msg: Msg) -> None:
            # Subjects end in <account>.<job>: <ns>.jobs.<partition>.<account>.<job>,
            # <ns>.executions.<kind>.<account>.<job>.
            parts = msg.subject.split(".")
            try:
                account_id = UUID(parts[-2])
            except (ValueError, IndexError):
                return
            notice = Notice(topic, stream, sequences(msg)[0], parts[-1])
            self._read[topic] = max(self._read.get(topic, 0), notice.sequence)
            for listener in self._listeners:
                listener.offer(account_id, notice)

        return receive

    def positions(self) -> dict[str, int]:
        """How far each topic's stream is projected: a page rendered now shows at least this much."""
        return {topic: self._watcher.position(stream) for topic, stream in self._streams.items()}

    async def notices(
        self, principal: Principal, seen: dict[str, int], until: datetime | None = None
    ) -> AsyncIterator[Notice | None]:
        """The notices for one page, each once the read models hold it; None when it is time for a keepalive.
        `seen` is how far the page's content went (positions() when it was read): a topic that moved on since (in
        the read models, or in what the feed has read and the read models may not hold yet) is announced at once, so
        nothing that happened between the render and the connection is missed (nor between a dropped connection and
        its reconnection). Ends when the feed closes, or at `until` (when the caller's
        token expires)."""
        if self._closed:
            return
        listener = Listener(principal)
        self._listeners.add(listener)
        self._cancel_stopper()
        try:
            await self._start()
            projected = self.positions()
            for topic in self._streams:
                position = max(projected[topic], self._read.get(topic, 0))
                if position > seen.get(topic, 0):
                    listener.pending.setdefault(topic, Notice(topic, self._streams[topic], position, ""))
                    listener.woken.set()
            loop = asyncio.get_running_loop()
            quiet_until = 0.0  # the loop's clock: no batch is sent before this
            while not listener.closed:
                wait = KEEPALIVE_SECONDS
                if until is not None:
                    wait = min(wait, (until - datetime.now(UTC)).total_seconds())
                    if wait <= 0:
                        return
                if not listener.pending:
                    try:
                        async with asyncio.timeout(wait):
                            await listener.woken.wait()
                    except TimeoutError:
                        yield None
                    listener.woken.clear()
                    continue
                if (hold := quiet_until - loop.time()) > 0:
                    # Within the pace: gather what comes until it ends, then send it all.
                    await asyncio.sleep(min(hold, wait))
                    continue
                quiet_until = loop.time() + PACE_SECONDS
                batch, listener.pending = listener.pending, {}
                for notice in batch.values():
                    await self._watcher.wait_for(notice.stream, notice.sequence, PROJECTION_WAIT_SECONDS)
                    yield notice
        finally:
            self._listeners.discard(listener)
            if not self._listeners and not self._closed:
                # Pages come and go as users click through: stop reading only once none has been open a while.
                self._cancel_stopper()
                self._stopper = asyncio.get_running_loop().create_task(self._stop_if_unused(UNUSED_STOP_SECONDS))

    async def close(self) -> None:
        """End every open page's stream (the server is stopping) and stop reading."""
        self._closed = True
        for listener in list(self._listeners):
            listener.close()
        self._cancel_stopper()
        async with self._lock:
            await self._unsubscribe(self._subscriptions)
            self._subscriptions = []
