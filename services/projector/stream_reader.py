"""Reads one stream in order from the stored position and applies batches in single transactions.

The position is written in the same transaction as the rows, so every event is applied exactly once and in order;
after each commit a NOTIFY tells waiting api replicas how far the read model has come.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared.db.pool import DbConnection
from shared.observability.metrics import PROJECTED_EVENTS, PROJECTION_LAG

log = logging.getLogger(__name__)

BATCH_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Projection:
    """What to read (stream and filter) and how to apply one decoded event."""

    stream: str
    filter_subject: str
    decode: Callable[[bytes], Any]
    apply: Callable[[DbConnection, Any, int], Awaitable[None]]


async def stored_position(pool: asyncpg.Pool, stream: str) -> int:
    """The last stream sequence applied to the read model (0 when none)."""
    value = await pool.fetchval("SELECT position FROM projector_positions WHERE stream = $1", stream)
    return int(value or 0)


class StaleWriterError(Exception):
    """Another projector applied these events first: this one must re-read from the stored position."""


async def _apply_batch(pool: asyncpg.Pool, projection: Projection, channel: str, batch: list[Msg]) -> int:
    last = batch[-1].metadata.sequence.stream
    async with pool.acquire() as conn, conn.transaction():
        # Fencing: the stored position is locked for the transaction, and a batch that starts at or before it was
        # applied by someone else (a projector that still believed it held the lease); applying it twice is refused.
        stored = await conn.fetchval(
            "SELECT position FROM projector_positions WHERE stream = $1 FOR UPDATE", projection.stream
        )
        if stored is not None and stored >= batch[0].metadata.sequence.stream:
            raise StaleWriterError(f"{projection.stream} is at {stored}, past this batch: another projector wrote it")
        for msg in batch:
            try:
                event = projection.decode(msg.data)
            except msgspec.ValidationError as exc:
                # A message that is not one of our events cannot be applied by any retry: skip it, loudly.
                log.error("skipping undecodable message %s seq %s: %s", msg.subject, msg.metadata.sequence.stream, exc)
                continue
            await projection.apply(conn, event, msg.metadata.sequence.stream)
        await conn.execute(
            "INSERT INTO projector_positions (stream, position) VALUES ($1, $2)"
            " ON CONFLICT (stream) DO UPDATE SET position = EXCLUDED.position",
            projection.stream,
            last,
        )
        await conn.execute("SELECT pg_notify($1, $2)", channel, f"{projection.stream}:{last}")
    PROJECTED_EVENTS.labels(projection.stream).inc(len(batch))
    PROJECTION_LAG.labels(projection.stream).set(batch[-1].metadata.num_pending or 0)
    return last


async def run_projection(
    js: JetStreamContext, pool: asyncpg.Pool, projection: Projection, channel: str, stop: asyncio.Event
) -> None:
    """Follow the stream until `stop` is set."""
    position = await stored_position(pool, projection.stream)
    config = (
        ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=position + 1)
        if position
        else ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    sub = await js.subscribe(projection.filter_subject, stream=projection.stream, ordered_consumer=True, config=config)
    log.info("projecting %s from position %d", projection.stream, position)
    try:
        while not stop.is_set():
            try:
                first = await sub.next_msg(timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            batch = [first]
            while len(batch) < BATCH_LIMIT and sub.pending_msgs > 0:
                batch.append(await sub.next_msg(timeout=1.0))
            await _apply_batch(pool, projection, channel, batch)
    finally:
        await sub.unsubscribe()


async def apply_range(
    js: JetStreamContext,
    pool: asyncpg.Pool,
    projection: Projection,
    channel: str,
    until: int,
    progress: Callable[[int], None] = lambda _n: None,
) -> int:
    """Apply the stream from the pool's stored position up to sequence `until` (a replay's bounded read).
    Returns the position reached; `progress` hears how many events each batch applied."""
    position = await stored_position(pool, projection.stream)
    if position >= until:
        return position
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=position + 1)
    sub = await js.subscribe(projection.filter_subject, stream=projection.stream, ordered_consumer=True, config=config)
    try:
        while position < until:
            batch = [await sub.next_msg(timeout=10.0)]
            while len(batch) < BATCH_LIMIT and sub.pending_msgs > 0 and batch[-1].metadata.sequence.stream < until:
                batch.append(await sub.next_msg(timeout=10.0))
            batch = [m for m in batch if m.metadata.sequence.stream <= until]
            if not batch:
                break
            reached = await _apply_batch(pool, projection, channel, batch)
            progress(reached - position)
            position = reached
    finally:
        await sub.unsubscribe()
    return position
