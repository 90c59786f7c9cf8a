"""Reading a stream in order with the server never running ahead of the reader.

The projector and the ticker read whole streams (a million job events at start-up or in a replay). The reader asks the
server for what its buffer has room for, so however large the backlog, it holds at most its buffer and nothing is
dropped: a reader that had to drop messages would have to read again from its last position, and at a million events
that never finished.
"""

from __future__ import annotations

import asyncio
import logging

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import StreamConfig

from services.projector.migrate import migrate
from services.projector.stream_reader import run_projection, stored_position
from shared.bus import ordered_reader
from shared.bus.ordered_reader import OrderedReader
from shared.db.pool import create_pool
from tests.projections import marker_projection, markers
from tests.waiting import eventually

pytestmark = pytest.mark.integration

BACKLOG = 3_000
LIMIT = 200
PAYLOAD = b"x" * 1_000


async def _stream_with_backlog(js: nats.js.JetStreamContext, stream: str, count: int) -> None:
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"]))
    acks = [await js.publish_async(f"{stream}.e", str(n).encode() + b" " + PAYLOAD) for n in range(1, count + 1)]
    await asyncio.gather(*acks)


async def test_a_reader_holds_no_more_than_its_buffer_however_large_the_backlog(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await _stream_with_backlog(js, "BACKLOG", BACKLOG)
        reader = await OrderedReader(LIMIT).subscribe(js, "BACKLOG.>", "BACKLOG")
        try:
            await eventually(lambda: reader.held == LIMIT, timeout=10, what="the reader's buffer filled")
            # Nothing taken yet: the server has sent exactly what the buffer had room for, and keeps the rest.
            info = await js.consumer_info("BACKLOG", reader.consumer)
            assert (info.delivered.consumer_seq, info.num_pending) == (LIMIT, BACKLOG - LIMIT), info
            read: list[int] = []
            most = 0
            while len(read) < BACKLOG:
                most = max(most, reader.held)
                read += [m.metadata.sequence.stream for m in await reader.batch(50, 10.0)]
            assert read == list(range(1, BACKLOG + 1)), "messages missing, repeated or out of order"
            assert most <= LIMIT, f"the reader held {most} messages with a buffer of {LIMIT}"
        finally:
            await reader.close()
        assert not await js.consumers_info("BACKLOG"), "the reader left its consumer on the server"
    finally:
        await nc.close()


async def _read(reader: OrderedReader, count: int) -> list[int]:
    read: list[int] = []
    while len(read) < count:
        batch = await reader.batch(count - len(read), 10.0)
        assert batch, f"nothing more after {read}"
        read += [m.metadata.sequence.stream for m in batch]
    assert not await reader.batch(LIMIT, 0.2), "more than was published"
    return read


async def test_a_reader_whose_consumer_is_gone_reads_on_after_the_last_message(nats_url: str) -> None:
    """A restarted server forgets a consumer kept in memory, and an operator may delete one: the reader replaces it
    with one that starts after the last message it received, so its caller sees every message once, in order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await _stream_with_backlog(js, "GONE", 10)
        reader = await OrderedReader(LIMIT).subscribe(js, "GONE.>", "GONE")
        try:
            assert await _read(reader, 10) == list(range(1, 11))
            gone = reader.consumer
            await js.delete_consumer("GONE", gone)
            await eventually(lambda: reader.consumer not in ("", gone), timeout=20, what="a new consumer")
            for n in range(11, 16):
                await js.publish("GONE.e", str(n).encode())
            assert await _read(reader, 5) == list(range(11, 16))
        finally:
            await reader.close()
    finally:
        await nc.close()


async def test_a_message_missing_between_two_is_read_again_not_skipped(nats_url: str) -> None:
    """A consumer sequence that skips one means a message did not arrive: the reader starts over after the last one
    it holds rather than go on without it."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await _stream_with_backlog(js, "SKIPPED", 5)
        reader = await OrderedReader(LIMIT).subscribe(js, "SKIPPED.>", "SKIPPED")
        try:
            assert await _read(reader, 5) == list(range(1, 6))
            first = reader.consumer
            # What the server would send had message 6 been lost on its way: consumer sequence 7, stream sequence 7.
            skipped = Msg(_client=nc, subject="SKIPPED.e", reply=f"$JS.ACK.SKIPPED.{first}.1.7.7.0.0", data=b"7")
            await reader._receive(first, skipped)
            for n in range(6, 9):
                await js.publish("SKIPPED.e", str(n).encode())
            assert await _read(reader, 3) == [6, 7, 8]
            assert reader.consumer != first
        finally:
            await reader.close()
    finally:
        await nc.close()


async def test_the_projector_applies_a_backlog_larger_than_its_buffer_without_reading_again(
    nats_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ordered_reader, "BUFFER_LIMIT", LIMIT)
    stream = "PROJBACKLOG"
    nc = await nats.connect(nats_url)
    pool = await create_pool(database_url)
    stop = asyncio.Event()
    projection = marker_projection(stream)
    try:
        js = nc.jetstream()
        await _stream_with_backlog(js, stream, BACKLOG)
        async with pool.acquire() as conn:
            await migrate(conn)
        with caplog.at_level(logging.WARNING):
            following = asyncio.create_task(run_projection(js, pool, projection, "backlog_test", stop))

            async def caught_up() -> int | None:
                position = await stored_position(pool, stream)
                return position if position == BACKLOG else None

            await eventually(caught_up, timeout=60, what=f"{stream} projected to its last event")
            stop.set()
            await following
        assert not [r for r in caplog.records if "reading again" in r.getMessage()], "the projector read again"
        assert await markers(pool, stream) == [(f"marker {stream} {n}", n) for n in range(1, BACKLOG + 1)]
    finally:
        stop.set()
        await pool.close()
        await nc.close()


async def test_an_idle_reader_asks_about_once_per_expiry(nats_url: str) -> None:
    """What an idle reader costs (the ticker has a reader per partition), counted on the wire: its requests."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="IDLE", subjects=["IDLE.>"]))
        reader = await OrderedReader(LIMIT).subscribe(js, "IDLE.>", "IDLE")
        asked: list[Msg] = []

        async def note(msg: Msg) -> None:
            asked.append(msg)

        spy = await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.IDLE.{reader.consumer}", cb=note)
        try:
            # Asserting a rate: nothing to await but the window in which the requests are counted. A request a
            # second (as before) would be six; one per expiry of 3 s, two or three.
            await asyncio.sleep(6.0)
            assert 1 <= len(asked) <= 3, f"{len(asked)} requests in 6 s of idling"
        finally:
            await spy.unsubscribe()
            await reader.close()
    finally:
        await nc.close()


async def test_a_message_is_delivered_into_the_open_request_not_after_its_expiry(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The expiry bounds no wait: with requests open for a minute, a message published meanwhile comes at once."""
    monkeypatch.setattr(ordered_reader, "PULL_EXPIRES_SECONDS", 60.0)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="OPEN", subjects=["OPEN.>"]))
        reader = await OrderedReader(LIMIT).subscribe(js, "OPEN.>", "OPEN")
        try:
            assert not await reader.batch(1, 0.5), "a message before any was published"
            await js.publish("OPEN.e", b"new")
            assert [m.data for m in await reader.batch(1, 10.0)] == [b"new"]
        finally:
            await reader.close()
    finally:
        await nc.close()
