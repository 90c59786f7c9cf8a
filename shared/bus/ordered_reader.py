"""Reading a stream in order, in batches, with the server never running ahead of the reader.

An ephemeral pull consumer (no acks, kept in memory) is asked for as many messages as the reader's buffer has room
for; the next request goes out once that one is answered and there is room again. Memory is bounded by the buffer,
whatever the backlog: nothing is ever dropped, so nothing has to be read twice.

Two ways that look simpler did not hold:
- an ordered push consumer read through a callback: nats-py answers the server's flow control as messages arrive
  rather than as the callback takes them, so delivery is never held back. At 1,000,000 job events about 350 MB
  piled up in the subscription, past nats-py's pending limit, which then drops messages (a slow consumer);
- nats-py's `fetch`: it waits for each message with `next_msg` (a task, a uuid and a `wait_for` per message), which
  was the largest cost after decoding in the profiles of the ticker's start-up and of a replay.
Here a callback subscription on the requests' inbox fills the buffer, and `batch` takes from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import deque
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header

log = logging.getLogger(__name__)

BUFFER_LIMIT = 10_000
# A request is sent only for at least this share of the buffer (or when it is empty): few, large requests.
REQUEST_SHARE = 4
# An open request waits this long on the server for new messages (a stream being followed), then ends with a 408
# and the next is sent. A message that arrives meanwhile is delivered into it at once, so this bounds nothing a
# reader waits for; it is what an idle reader costs (the ticker follows each of its partitions with a reader: at 1 s,
# 32 requests and their 408s a second with nothing to read).
PULL_EXPIRES_SECONDS = 3.0
# A request neither answered nor expired this long after its expiry is checked on: the consumer may be gone (a
# restarted server forgets consumers kept in memory). With the expiry, a lost consumer is found within 6 s.
ANSWER_GRACE_SECONDS = 3.0
# A request or a consumer that could not be made (the connection is away) is tried again after this long.
RETRY_SECONDS = 1.0
# The server removes the consumer of a reader that died without closing it, after this long without a request.
INACTIVE_SECONDS = 300.0
# Creating a consumer that starts from each subject's last message makes the server look through every subject of a
# large stream (seconds at a million jobs, more when many are created at once): far longer than an API call's usual
# timeout.
CREATE_TIMEOUT_SECONDS = 60.0
# One request's messages stay under this many bytes, however large the messages are.
REQUEST_MAX_BYTES = 64 * 1024 * 1024
_NO_MORE = ("404", "408", "409")  # a request that ended: no messages, expired, or a limit of the request reached
_GONE = ("Consumer Deleted", "Consumer is push based")


def _connection(js: JetStreamContext) -> Client:
    # nats-py gives a JetStream context no public way back to its connection; the requests go out on it.
    connection: Client = js._nc
    return connection


class OrderedReader:
    """One ephemeral pull consumer on `stream`, filtered by `subject`, read in order with `batch`.

    A consumer that is lost (a restarted server forgets consumers kept in memory, an operator deletes one, a message
    goes missing) is replaced by one that starts after the last message received, on a new inbox: the reader's
    caller sees every message once and in order, across any of that."""

    def __init__(self, buffer_limit: int | None = None) -> None:
        self._buffer: deque[Msg] = deque()
        self._limit = buffer_limit or BUFFER_LIMIT
        self._arrived = asyncio.Event()
        self._taken = asyncio.Event()
        self._answered = asyncio.Event()
        self._asked = 0  # messages the open request may still bring
        self._consumer_seq = 0  # of the last message accepted from the current consumer
        self._stream_seq = 0  # of the last message accepted
        self._lost: str | None = None  # why the current consumer cannot go on
        self._js: JetStreamContext | None = None
        self._stream = ""
        self._subject = ""
        self._first = ConsumerConfig()
        self.pending_at_start = 0
        self._consumer = ""
        self._sub: Subscription | None = None
        self._puller: asyncio.Task[None] | None = None

    @property
    def consumer(self) -> str:
        """The current consumer's name on the server (empty once closed)."""
        return self._consumer

    @property
    def held(self) -> int:
        """Messages this reader holds: taken from the server and not yet by `batch`."""
        pending = self._sub.pending_msgs if self._sub is not None else 0
        return len(self._buffer) + pending

    async def subscribe(
        self,
        js: JetStreamContext,
        subject: str,
        stream: str,
        *,
        config: ConsumerConfig | None = None,
        deliver_policy: DeliverPolicy | None = None,
    ) -> OrderedReader:
        """Start reading `subject` (a filter) of `stream`. `pending_at_start` then tells how many messages the
        consumer had to deliver when it was created."""
        wanted = config or ConsumerConfig()
        self._js, self._stream, self._subject = js, stream, subject
        self._first = wanted.evolve(deliver_policy=deliver_policy or wanted.deliver_policy or DeliverPolicy.ALL)
        self.pending_at_start = await self._open(self._first)
        self._puller = asyncio.create_task(self._pull())
        return self

    async def _open(self, config: ConsumerConfig) -> int:
        """A consumer as `config` says, and a fresh inbox for its messages (a lost one's stragglers go nowhere).
        Returns how many messages it has to deliver."""
        assert self._js is not None
        info = await self._js.add_consumer(
            self._stream,
            config.evolve(
                filter_subject=self._subject,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=INACTIVE_SECONDS,
                mem_storage=True,
                num_replicas=1,
            ),
            timeout=CREATE_TIMEOUT_SECONDS,
        )
        nc = _connection(self._js)
        inbox = nc.new_inbox()
        # The requests bound what is pending here: the subscription's own limits are never what holds it back.
        sub = await nc.subscribe(
            inbox,
            cb=functools.partial(self._receive, info.name),
            pending_msgs_limit=2 * self._limit,
            pending_bytes_limit=4 * REQUEST_MAX_BYTES,
        )
        self._consumer, self._sub, self._consumer_seq, self._lost = info.name, sub, 0, None
        return int(info.num_pending or 0)

    async def _resume(self) -> None:
        """Replace a lost consumer by one that starts after the last message received; retried until it works."""
        log.warning("%s: %s; reading on after stream sequence %d", self._stream, self._lost, self._stream_seq)
        await self._drop_consumer()
        resumed = (
            ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._stream_seq + 1)
            if self._stream_seq
            else None
        )
        while True:
            try:
                # Before the first message, the original policy (all, or each subject's last) starts over.
                await self._open(resumed or self._first)
                return
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("%s: could not open a consumer, trying again: %s", self._stream, exc)
                await asyncio.sleep(RETRY_SECONDS)

    async def _pull(self) -> None:
        assert self._js is not None
        nc = _connection(self._js)
        loop = asyncio.get_running_loop()
        while True:
            if self._lost is not None:
                await self._resume()
            assert self._sub is not None
            room = self._limit - len(self._buffer)
            if room < self._limit // REQUEST_SHARE and self._buffer:
                self._taken.clear()
                await self._taken.wait()
                continue
            self._asked = room
            self._answered.clear()
            request = {"batch": room, "expires": int(PULL_EXPIRES_SECONDS * 1e9), "max_bytes": REQUEST_MAX_BYTES}
            try:
                subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self._consumer}"
                await nc.publish(subject, json.dumps(request).encode(), reply=self._sub.subject)
            except nats.errors.Error as exc:  # the connection is away; nats-py reconnects by itself
                log.warning("could not ask %s for messages: %s", self._consumer, exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            deadline = loop.time() + PULL_EXPIRES_SECONDS + ANSWER_GRACE_SECONDS
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancel that arrives as the wait ends,
            # and close() would then wait on this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._answered.wait()
            if not self._answered.is_set():
                await self._check_consumer()  # no answer: ask again, or replace a consumer that is gone

    async def _check_consumer(self) -> None:
        assert self._js is not None
        try:
            await self._js.consumer_info(self._stream, self._consumer)
        except nats.js.errors.NotFoundError:
            self._lost = f"consumer {self._consumer} is gone"
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("no answer from %s; asking again: %s", self._consumer, exc)

    def _lose(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        self._answered.set()

    async def _receive(self, consumer: str, msg: Msg) -> None:
        if consumer != self._consumer or self._lost is not None:
            return  # from a consumer already replaced, or after a gap: the replacement sends it again
        headers = msg.headers
        if headers is not None and (status := headers.get(Header.STATUS)) is not None and not msg.data:
            self._on_status(status, headers)
            return
        stream_seq, consumer_seq = sequences(msg)
        if consumer_seq != self._consumer_seq + 1:
            self._lose(f"consumer sequence {consumer_seq} came after {self._consumer_seq}")
            return
        self._consumer_seq, self._stream_seq = consumer_seq, stream_seq
        self._buffer.append(msg)
        self._arrived.set()
        self._asked -= 1
        if self._asked <= 0:
            self._answered.set()

    def _on_status(self, status: str, headers: dict[str, Any]) -> None:
        description = str(headers.get(Header.DESCRIPTION, ""))
        if status == "100":  # a heartbeat
            return
        if status in _NO_MORE and not any(gone in description for gone in _GONE):
            self._answered.set()
            return
        self._lose(f"consumer {self._consumer} answered {status} {description}".rstrip())

    async def batch(self, limit: int, timeout: float) -> list[Msg]:
        """Up to `limit` messages that have arrived; waits up to `timeout` for the first (empty if none came)."""
        if not self._buffer:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._arrived.wait()
        taken = [self._buffer.popleft() for _ in range(min(limit, len(self._buffer)))]
        if taken:
            self._taken.set()
        return taken

    async def close(self) -> None:
        if self._puller is not None:
            self._puller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._puller
            self._puller = None
        await self._drop_consumer()

    async def _drop_consumer(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None
        if self._js is not None and self._consumer:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self._js.delete_consumer(self._stream, self._consumer)
            self._consumer = ""


def sequences(msg: Msg) -> tuple[int, int]:
    """A JetStream message's stream and consumer sequences, read from its reply subject (`$JS.ACK.<stream>.
    <consumer>.<delivered>.<stream seq>.<consumer seq>...`, with a domain and an account hash after `ACK` in the
    newer form). `msg.metadata` parses the same subject into objects and a timestamp: a sixth of a ticker's start-up
    at a million jobs, for two numbers."""
    tokens = (msg.reply or "").split(".")
    if tokens[:2] == ["$JS", "ACK"]:
        if len(tokens) == 9:
            return int(tokens[5]), int(tokens[6])
        if len(tokens) >= 11:
            return int(tokens[Msg.Ack.StreamSeq]), int(tokens[Msg.Ack.ConsumerSeq])
    sequence = msg.metadata.sequence  # raises NotJSMessageError
    return sequence.stream, sequence.consumer
