"""Publishing a batch to JetStream without waiting for each ack in turn.

`JetStreamContext.publish` is a request per message: a reply future, a timer and a round trip awaited before the
next message of one caller goes out. A batch (the occurrences a ticker finds due at one second) is instead written
in one go with `publish_async`, in order, and its acks are gathered with one timeout for the whole batch. Messages
whose ack failed or did not come in time are published again with the same message ids, so JetStream drops the
repeat of one that had in fact been stored.

A publish can be refused at once: in a cluster, while a stream's leader is being elected after its server was lost,
there is no one to answer ("no responders"). The rounds are then paced, the pause doubling, and go on for as long as
an election takes (STORE_WITHIN_SECONDS) before the batch is given up. And a connection lost mid-round (its server
died) takes the round's unanswered publishes with it: once the client is connected to another server, the round
ends and they go again, instead of waiting out the ack timeout.
"""

from __future__ import annotations

import asyncio
from asyncio import FIRST_COMPLETED
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck

from shared.bus.connection import next_reconnect

# How long a round waits for its acks (JetStream's own request timeout).
ACK_TIMEOUT_SECONDS = 5.0
# How long a batch is tried before it is given up (a stream leader's election takes seconds), and the pauses between
# rounds (from the first, doubling up to the last).
STORE_WITHIN_SECONDS = 30.0
FIRST_PAUSE_SECONDS = 0.1
LONGEST_PAUSE_SECONDS = 2.0
# Messages sent before the acks of the window before are awaited: two windows stay below nats-py's limit of acks
# outstanding (4,000), where a publish would wait for a free slot, and forever if the acks in flight were lost with
# their server.
WINDOW = 1500


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message of a batch: `msg_id` deduplicates it (Nats-Msg-Id)."""

    subject: str
    payload: bytes
    msg_id: str
    # More headers (a trace context), when there are any.
    extra: dict[str, str] | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Nats-Msg-Id": self.msg_id}
        return headers if self.extra is None else headers | self.extra


class BatchNotStored(nats.errors.Error):
    """Some messages of a batch were still not acknowledged after every round."""

    def __init__(self, missing: int, rounds: int, cause: BaseException) -> None:
        super().__init__(f"{missing} message(s) not stored after {rounds} rounds: {cause!r}")
        self.missing = missing
        self.__cause__ = cause


async def publish_all(
    js: JetStreamContext,
    messages: Sequence[Outgoing],
    *,
    timeout: float = ACK_TIMEOUT_SECONDS,
    within: float = STORE_WITHIN_SECONDS,
) -> list[PubAck]:
    """Publish `messages` in order and return their acks (in the same order), repeating the ones not acked.

    Raises BatchNotStored once some are still unacknowledged `within` seconds after the start (the round under way
    when that time comes is finished first); a connection that cannot take a publish at all (closed) raises its own
    error at once. Either way, what was stored stays stored, and a caller's retry of the whole batch repeats nothing
    (same message ids)."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + within
    pause = FIRST_PAUSE_SECONDS
    acks: dict[int, PubAck] = {}
    pending = list(range(len(messages)))
    cause: BaseException = TimeoutError(f"no ack within {timeout} s")
    rounds = 0
    while True:
        rounds += 1
        futures = await _round(js, messages, pending, loop.time() + timeout)
        still: list[int] = []
        for i in pending:
            future = futures.get(i)
            if future is None:
                still.append(i)
                cause = TimeoutError("not sent: the round ended first")
            elif (error := _error_of(future)) is None:
                acks[i] = future.result()
            else:
                still.append(i)
                cause = error
        pending = still
        if not pending:
            return [acks[i] for i in range(len(messages))]
        if loop.time() + pause > give_up_at:
            raise BatchNotStored(len(pending), rounds, cause)
        await asyncio.sleep(pause)
        pause = min(2 * pause, LONGEST_PAUSE_SECONDS)


async def _round(
    js: JetStreamContext, messages: Sequence[Outgoing], pending: list[int], ends_at: float
) -> dict[int, asyncio.Future[PubAck]]:
    """Publish the `pending` messages a window at a time, each window's acks awaited once the next is out, until
    all are answered, `ends_at` (loop time) comes, or the connection moves to another server (what was in flight on
    the lost one is never answered). Returns each sent message's settled future (cancelled: no answer in time)."""
    loop = asyncio.get_running_loop()
    # nats-py gives a JetStream context no public way back to its connection.
    reconnected = next_reconnect(js._nc)
    futures: dict[int, asyncio.Future[PubAck]] = {}

    async def settled(answered: asyncio.Future[Any]) -> bool:
        await asyncio.wait(
            [answered, reconnected], timeout=max(0.0, ends_at - loop.time()), return_when=FIRST_COMPLETED
        )
        return answered.done()

    try:
        previous: asyncio.Future[Any] | None = None
        for start in range(0, len(pending), WINDOW):
            sent = {}
            for i in pending[start : start + WINDOW]:
                message = messages[i]
                sent[i] = await js.publish_async(message.subject, message.payload, headers=message.headers())
            futures.update(sent)
            # The window before this one must be answered before the next goes out: at most two in flight.
            if previous is not None and not await settled(previous):
                return futures
            previous = asyncio.gather(*sent.values(), return_exceptions=True)
        if previous is not None:
            await settled(previous)
    finally:
        for future in futures.values():
            future.cancel()  # a no-op for those answered; frees nats-py's slots of the others
    return futures


def _error_of(future: asyncio.Future[PubAck]) -> BaseException | None:
    """Why a settled `future` has no ack (cancelled: it timed out), or None."""
    return TimeoutError("no ack in time") if future.cancelled() else future.exception()


class AckedPublisher:
    """Publishes single messages for many concurrent callers (the dispatcher's attempts) without a request per
    message: each is sent with `publish_async` and its ack future awaited directly, and one sweeper, running while
    acks are outstanding, fails those overdue with TimeoutError instead of a timer and a `wait_for` per message.
    A caller that gets an error publishes again with the same message id."""

    def __init__(
        self, js: JetStreamContext, *, timeout: float = ACK_TIMEOUT_SECONDS, sweep_every: float = 0.25
    ) -> None:
        self._js = js
        self._timeout = timeout
        self._sweep_every = sweep_every
        self._deadlines: dict[asyncio.Future[PubAck], float] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def publish(self, message: Outgoing) -> PubAck:
        ack = await self._js.publish_async(message.subject, message.payload, headers=message.headers())
        loop = asyncio.get_running_loop()
        self._deadlines[ack] = loop.time() + self._timeout
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep())
        try:
            return await ack
        finally:
            self._deadlines.pop(ack, None)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._deadlines:
            await asyncio.sleep(self._sweep_every)
            now = loop.time()
            for ack, deadline in list(self._deadlines.items()):
                if deadline <= now and not ack.done():
                    ack.set_exception(TimeoutError(f"no ack within {self._timeout:g} s"))
