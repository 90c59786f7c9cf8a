"""Pulling requested executions and running the highest-priority waiting one first.

JetStream hands a consumer's messages out in stream order. To let priority reorder a backlog, a consumer fetches up
to `lookahead` messages beyond those running, keeps them in a heap ordered by (priority descending, stream
sequence), and starts the top one whenever a slot frees. Messages waiting in the heap are kept alive (in_progress)
so their ack wait never runs out, and on stop they are handed back at once so another replica can take them.

Priority therefore reorders everything one process holds: the messages running plus up to `lookahead` waiting.
Beyond that window the stream's order (time of publication) applies.

A message fetched before its `fire_at` (the ticker publishes a short lead ahead) is held aside, taking no slot and
no room in the window, and joins the heap at that instant; held messages are kept alive and handed back like the
waiting ones.

Running messages are kept alive too, so the ack wait bounds only how long a message of a process that died waits to
be redelivered (a held one, a waiting one, one whose run was cut off), not how long a run may take.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.bus.overlap import Deferred
from shared.contracts.callbacks import CallbackRequested
from shared.contracts.codec import decode_execution_event
from shared.contracts.executions import ExecutionRequested, ExecutionWaiting
from shared.observability.logs import execution_fields
from shared.observability.metrics import CONSUMER_PENDING
from shared.runtime.periodic import pause

log = logging.getLogger(__name__)

FETCH_BATCH = 64
FETCH_WAIT_SECONDS = 0.5
RETRY_PUBLISH_DELAY_SECONDS = 1.0
# A fetch the server answers with an error (JetStream not ready yet after a restart, the consumer being recreated) is
# tried again after this long; the consumer never stops fetching on its own.
FETCH_RETRY_SECONDS = 1.0
# A finished run's ack waits this long for others: a burst's acks leave in a few writes instead of one each. An ack
# not sent (a crash in between) redelivers a request whose outcome is stored; its repeat is dropped by message id.
ACK_BATCH_SECONDS = 0.005
# How early the loop's timer may release held messages before their fire time on the wall clock, at most.
TIMER_SLACK_SECONDS = 0.05
# The consumer's lag is asked of the server this often: a consumer whose slots are all busy fetches nothing, and the
# lag its fetches reported would stand still exactly while it grows (the alert on a growing lag could not fire).
LAG_REPORT_SECONDS = 15.0

# What a consumer runs: requested executions (the dispatchers' consumer), callbacks to send (their callback
# consumer) or deliveries waiting for their flow-control key (their waiting consumer). A callback has the default
# priority; only a requested execution has a fire time.
Request = ExecutionRequested | CallbackRequested | ExecutionWaiting
Handler = Callable[[Request, Msg], Coroutine[Any, Any, None]]
DEFAULT_PRIORITY = 5


class Slots(asyncio.Semaphore):
    """A semaphore that tells how many slots are free (one process's concurrency, shared by its consumers)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.free = size

    async def acquire(self) -> Literal[True]:
        await super().acquire()
        self.free -= 1
        return True

    def release(self) -> None:
        self.free += 1
        super().release()


class _Acks:
    """Acks sent together, `every` seconds after the first of a batch was added, and all at once on stop."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._msgs: list[Msg] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def add(self, msg: Msg) -> None:
        self._msgs.append(msg)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._every, self._send_soon)

    def _send_soon(self) -> None:
        self._timer = None
        sending = asyncio.get_running_loop().create_task(self._send())
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)

    async def _send(self) -> None:
        msgs, self._msgs = self._msgs, []
        for msg in msgs:
            try:
                await msg.ack()
            except nats.errors.Error as exc:  # the request comes back after the ack wait; its repeat changes nothing
                log.warning("could not ack %s: %s", msg.subject, exc)

    async def close(self) -> None:
        """Send what is waiting now (on stop: an ack left unsent would make another replica run it again)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._send()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


class _Waiting:
    """A heap of fetched messages: highest priority first, then oldest."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, Request, Msg]] = []
        self._count = 0
        self.changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, request: Request, msg: Msg) -> None:
        self._count += 1
        if isinstance(request, ExecutionWaiting):
            priority = request.request.priority
        else:
            priority = request.priority if isinstance(request, ExecutionRequested) else DEFAULT_PRIORITY
        heapq.heappush(self._heap, (-priority, msg.metadata.sequence.stream, self._count, request, msg))
        self.changed.set()

    def pop(self) -> tuple[Request, Msg]:
        _, _, _, request, msg = heapq.heappop(self._heap)
        self.changed.set()
        return request, msg

    def clear(self) -> list[Msg]:
        held: list[Msg] = [entry[4] for entry in self._heap]
        self._heap.clear()
        return held


class PrioritizedConsumer:
    """Runs `handle` for each requested execution of one pull consumer, at most `slots` at a time.

    A run that returns is acked (acks go out together, see ACK_BATCH_SECONDS): its outcome is stored. One that
    could not store it (a NATS error or timeout) is handed back with a short delay, so another attempt records it."""

    def __init__(
        self,
        sub: JetStreamContext.PullSubscription,
        handle: Handler,
        *,
        slots: Slots,
        lookahead: int,
        ack_wait_seconds: float,
        max_hold_seconds: float = 0.0,
        ack_every: float = ACK_BATCH_SECONDS,
    ) -> None:
        self._sub = sub
        self._handle = handle
        self._slots = slots
        self._lookahead = lookahead
        self._keep_alive_every = ack_wait_seconds / 3
        self._max_hold = max_hold_seconds
        self._waiting = _Waiting()
        self._acks = _Acks(ack_every)
        # Messages fetched before their fire time (published ahead), released into `_waiting` at that instant: one
        # timer per instant (to the millisecond), since a busy second's occurrences share theirs.
        self._held: dict[float, tuple[asyncio.TimerHandle, list[tuple[Request, Msg]]]] = {}
        self._running: dict[asyncio.Task[None], Msg] = {}  # each run in flight, with its message
        # Every message in hand (held, waiting or running), by id, with when the server last heard of it (its
        # delivery or the last in_progress), in loop time: only those not heard of for a while are kept alive.
        self._in_hand: dict[int, tuple[Msg, float]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and run until `stop` is set; waiting messages go back to the server, running ones finish."""
        # The keeper outlives the other loops: it keeps the runs alive until they have finished, below.
        keeper = asyncio.create_task(self._keep_alive())
        loops = [
            asyncio.create_task(self._fetch(stop)),
            asyncio.create_task(self._start(stop)),
            asyncio.create_task(self._report_lag(stop)),
        ]
        stopped = asyncio.create_task(stop.wait())
        try:
            # A loop that ends by itself has failed: raised here (after the hand-back below), so the process ends
            # visibly instead of holding its slots with nothing fetched.
            await asyncio.wait([stopped, keeper, *loops], return_when=asyncio.FIRST_COMPLETED)
            for loop in [keeper, *loops]:
                if loop.done():
                    loop.result()
        finally:
            stopped.cancel()
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            for timer, _ in self._held.values():
                timer.cancel()
            held = self._held_messages()
            self._held.clear()
            for msg in [*self._waiting.clear(), *held]:
                self._in_hand.pop(id(msg), None)
                with contextlib.suppress(nats.errors.Error):
                    await msg.nak()
            try:
                if self._running:  # kept alive meanwhile: a long delivery finishing is not redelivered elsewhere
                    await asyncio.gather(*self._running, return_exceptions=True)
            finally:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
                await self._acks.close()

    async def _fetch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            room = self._lookahead + self._slots.free - len(self._waiting)
            if room <= 0:
                self._waiting.changed.clear()
                await self._waiting.changed.wait()
                continue
            try:
                msgs = await self._sub.fetch(min(room, FETCH_BATCH), timeout=FETCH_WAIT_SECONDS)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.Error as exc:
                log.warning("fetching requests failed, trying again in %.0f s: %r", FETCH_RETRY_SECONDS, exc)
                await asyncio.sleep(FETCH_RETRY_SECONDS)
                continue
            for msg in msgs:
                await self._accept(msg)
            if msgs:
                CONSUMER_PENDING.labels(msgs[-1].metadata.consumer or "").set(msgs[-1].metadata.num_pending or 0)

    async def _report_lag(self, stop: asyncio.Event) -> None:
        """Set the lag gauge from the server's count every LAG_REPORT_SECONDS (fetches set it in between)."""
        while not await pause(stop, LAG_REPORT_SECONDS):
            try:
                info = await self._sub.consumer_info()
            except Exception as exc:  # noqa: BLE001 - a figure: the next report may do better, and fetching goes on
                log.warning("could not read the consumer's lag: %r", exc)
                continue
            CONSUMER_PENDING.labels(info.name).set(info.num_pending or 0)

    async def _accept(self, msg: Msg) -> None:
        try:
            event = decode_execution_event(msg.data)
        except msgspec.ValidationError as exc:
            log.error("terminating undecodable message on %s: %s", msg.subject, exc)
            await msg.term()
            return
        if not isinstance(event, ExecutionRequested | CallbackRequested | ExecutionWaiting):
            log.error("terminating %s on %s: nothing to run", type(event).__name__, msg.subject)
            await msg.term()
            return
        self._in_hand[id(msg)] = (msg, asyncio.get_running_loop().time())
        fire_at = event.fire_at if isinstance(event, ExecutionRequested) else None
        delay = (fire_at - datetime.now(UTC)).total_seconds() if fire_at is not None else 0.0
        # Never held longer than the lead: a ticker whose clock runs ahead of this one's must not delay deliveries
        # by its skew.
        delay = min(delay, self._max_hold)
        if delay <= 0:
            self._waiting.push(event, msg)
            return
        loop = asyncio.get_running_loop()
        # Up to the next millisecond, never to the nearest: rounded down, a delivery started before its second (a
        # fresh-clone run saw one start 63 µs early).
        instant = math.ceil((loop.time() + delay) * 1000) / 1000
        if (held := self._held.get(instant)) is None:
            self._held[instant] = held = (loop.call_at(instant, self._release, instant), [])
        held[1].append((event, msg))

    def _held_messages(self) -> list[Msg]:
        return [msg for _, group in self._held.values() for _, msg in group]

    def _release(self, instant: float) -> None:
        """Held messages' fire time has come: they join the others waiting for a slot, by priority."""
        if (held := self._held.pop(instant, None)) is None:
            return
        # The loop's timer may fire a little before the wall clock reaches the instant (uvloop's timers count whole
        # milliseconds of a cached clock: a suite run saw a delivery start 0.2 ms early): hold them that little more.
        # A larger gap is a ticker's clock ahead of this one's, which the hold never waits out (see _accept).
        now = datetime.now(UTC)
        early = max(
            ((e.fire_at - now).total_seconds() for e, _ in held[1] if isinstance(e, ExecutionRequested) and e.fire_at),
            default=0.0,
        )
        if 0 < early < TIMER_SLACK_SECONDS:
            loop = asyncio.get_running_loop()
            self._held[instant] = (loop.call_later(early + 0.0005, self._release, instant), held[1])
            return
        for event, msg in held[1]:
            self._waiting.push(event, msg)

    async def _start(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self._waiting:
                self._waiting.changed.clear()
                await self._waiting.changed.wait()
                continue
            await self._slots.acquire()
            if not self._waiting:
                self._slots.release()
                continue
            request, msg = self._waiting.pop()
            running = asyncio.create_task(self._settle(request, msg))
            self._running[running] = msg
            running.add_done_callback(self._finished)

    async def _settle(self, request: Request, msg: Msg) -> None:
        try:
            await self._handle(request, msg)
        except Deferred as deferred:
            await msg.nak(delay=deferred.seconds)
            return
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            log.warning(
                "could not record execution %s, will retry: %s",
                request.execution_id,
                exc,
                extra=execution_fields(request),
            )
            await msg.nak(delay=RETRY_PUBLISH_DELAY_SECONDS)
            return
        self._acks.add(msg)

    def _finished(self, running: asyncio.Task[None]) -> None:
        if (msg := self._running.pop(running, None)) is not None:
            self._in_hand.pop(id(msg), None)
        self._slots.release()
        self._waiting.changed.set()
        if not running.cancelled() and (exc := running.exception()) is not None:
            log.error("a run failed outside its own error handling", exc_info=exc)

    async def _keep_alive(self) -> None:
        """Tell the server that a message held, waiting or running is still in hand once a third of the ack wait has
        passed since it last heard of it, looking every sixth (so none goes unheard of for more than half the ack
        wait). Most messages are taken well within a third of it and cost no word at all: telling the server of
        every one in hand at each look sent hundreds of in_progress a second at 1,000 executions a second."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._keep_alive_every / 2)
            now = loop.time()
            for key, (msg, heard) in list(self._in_hand.items()):
                if now - heard < self._keep_alive_every or key not in self._in_hand:
                    continue  # heard of lately, or finished while an earlier in_progress was sent
                self._in_hand[key] = (msg, now)
                with contextlib.suppress(nats.errors.Error):
                    await msg.in_progress()
