"""A batch is applied only after the stored position, and announced only once committed: a batch that starts at or
before the stored position (another projector applied it) is refused and leaves nothing behind."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
import pytest
from nats.aio.msg import Msg

from services.projector.batched_writes import Step, Write
from services.projector.migrate import migrate
from services.projector.stream_reader import Projection, StaleWriterError, _apply_batch, stored_position
from shared.db.pool import create_pool
from tests.waiting import eventually

pytestmark = pytest.mark.integration

STREAM = "FENCED"
CHANNEL = "fenced_positions"


def message(sequence: int) -> Msg:
    """A message as JetStream delivers it: its stream sequence is in the reply subject."""
    return Msg(_client=None, subject="x", reply=f"$JS.ACK.{STREAM}.c.1.{sequence}.{sequence}.0.0", data=b"")  # type: ignore[arg-type]


def marker(sequence: int) -> Step:
    """A write that leaves a trace of the batch it belongs to."""
    sql = "INSERT INTO projector_positions (stream, position) VALUES ($1, $2)"
    return Step(uuid.uuid4(), 0, (Write(sql, (f"marker {sequence}", sequence)),))


PROJECTION = Projection(stream=STREAM, filter_subject="x.>", decode=msgspec.json.decode, step=lambda e, s: None)


async def test_a_batch_at_or_before_the_stored_position_is_refused_and_leaves_nothing(database_url: str) -> None:
    pool = await create_pool(database_url)
    listener = await asyncpg.connect(database_url)
    heard: list[str] = []
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        await listener.add_listener(CHANNEL, lambda *args: heard.append(args[3]))

        assert await _apply_batch(pool, PROJECTION, CHANNEL, [message(1), message(10)], [marker(1)]) == 10
        assert await stored_position(pool, STREAM) == 10
        for first in (10, 5):  # starts at the stored position, or before it
            with pytest.raises(StaleWriterError, match="is at 10"):
                await _apply_batch(pool, PROJECTION, CHANNEL, [message(first), message(12)], [marker(first)])
        assert await stored_position(pool, STREAM) == 10
        assert await _apply_batch(pool, PROJECTION, CHANNEL, [message(11), message(12)], [marker(11)]) == 12
        assert await stored_position(pool, STREAM) == 12

        markers = await pool.fetch("SELECT stream FROM projector_positions WHERE stream LIKE 'marker%' ORDER BY 1")
        assert [r["stream"] for r in markers] == ["marker 1", "marker 11"], "a refused batch's writes were kept"
        await eventually(lambda: len(heard) >= 2, timeout=5, what="the notifications of the two batches applied")
        assert heard == [f"{STREAM}:10", f"{STREAM}:12"], "a refused batch was announced"
    finally:
        await listener.close()
        await pool.close()
