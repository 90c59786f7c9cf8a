"""Reads one stream in order from the stored position and applies batches in single transactions.

The position is written in the same transaction as the rows, so every event is applied exactly once and in order;
after each commit a NOTIFY tells waiting api replicas how far the read model has come.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.projector.batched_writes import Step, apply_steps
from shared.bus.ordered_reader import OrderedReader, sequences
from shared.db.pool import DbConnection
from shared.observability import tracing
from shared.observability.metrics import PROJECTED_BATCHES, PROJECTED_EVENTS, PROJECTION_LAG

log = logging.getLogger(__name__)

BATCH_LIMIT = 2000
# Following a busy stream, a transaction starts at most this long after the one before, taking everything that has
# arrived meanwhile: a few large transactions instead of one per handful of events (each has its round trips, its
# position update and its NOTIFY). An event that comes after a quiet spell is applied at once; none waits longer
# than this for its batch to start.
LINGER_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Projection:
    """What to read (stream and filter) and how to apply one decoded event."""

    stream: str
    filter_subject: str
    decode: Callable[[bytes], Any]
    # The writes of one decoded event at a stream sequence (None: it changes nothing here).
    step: Callable[[Any, int], Step | None]


# What a live projection does with a batch's events inside its transaction, before its position moves (the chains
# fired by results): a failure rolls the batch back, so it is done again with the batch. Replays have none.
BeforeCommit = Callable[[DbConnection, list[Any]], Awaitable[None]]


async def stored_position(pool: asyncpg.Pool, stream: str) -> int:
    """The last stream sequence applied to the read model (0 when none)."""
    value = await pool.fetchval("SELECT position FROM projector_positions WHERE stream = $1", stream)
    return int(value or 0)


class StaleWriterError(Exception):
    """Another projector applied these events first: this one must re-read from the stored position."""


def _steps(projection: Projection, batch: list[Msg], events: list[Any] | None = None) -> list[Step]:
    """The batch's writes; `events`, if given, receives its decoded events."""
    steps = []
    for msg in batch:
        try:
            event = projection.decode(msg.data)
        except msgspec.ValidationError as exc:
            # A message that is not one of our events cannot be applied by any retry: skip it, loudly.
            log.error("skipping undecodable message %s seq %s: %s", msg.subject, sequences(msg)[0], exc)
            continue
        if events is not None:
            events.append(event)
        if (step := projection.step(event, sequences(msg)[0])) is not None:
            steps.append(step)
    return steps


# The batch's last position is stored, and announced, only if the stored one is still before the batch's first
# event: a batch that starts at or before it was applied by someone else (a projector that still believed it held
# the lease), and nothing comes back. One round trip; the row lock it takes makes a concurrent writer wait for this
# commit and then see the new position. NOTIFY is sent at commit only, so a refused batch announces nothing.
_MOVE_POSITION = """
WITH moved AS (
    INSERT INTO projector_positions (stream, position) VALUES ($1, $3)
    ON CONFLICT (stream) DO UPDATE SET position = EXCLUDED.position WHERE projector_positions.position < $2
    RETURNING position
)
SELECT count(*) FROM moved, pg_notify($4, $5)
"""


async def _apply_batch(
    pool: asyncpg.Pool,
    projection: Projection,
    channel: str,
    batch: list[Msg],
    steps: list[Step],
    before_commit: tuple[BeforeCommit, list[Any]] | None = None,
) -> int:
    first, last = sequences(batch[0])[0], sequences(batch[-1])[0]
    with _batch_span(projection, batch):  # the commit included
        async with pool.acquire() as conn, conn.transaction():
            await apply_steps(conn, steps)
            if before_commit is not None:
                hook, events = before_commit
                await hook(conn, events)
            moved = await conn.fetchval(
                _MOVE_POSITION, projection.stream, first, last, channel, f"{projection.stream}:{last}"
            )
            if not moved:  # raising rolls the batch's writes back
                stored = await conn.fetchval(
                    "SELECT position FROM projector_positions WHERE stream = $1", projection.stream
                )
                raise StaleWriterError(
                    f"{projection.stream} is at {stored}, past this batch: another projector wrote it"
                )
    PROJECTED_EVENTS.labels(projection.stream).inc(len(batch))
    PROJECTED_BATCHES.labels(projection.stream).inc()
    PROJECTION_LAG.labels(projection.stream).set(batch[-1].metadata.num_pending or 0)
    return last


def _batch_span(projection: Projection, batch: list[Msg]) -> AbstractContextManager[object]:
    """The span of a batch's write: it continues the trace of the first event that carries one (an api command's),
    the others are its links. Nothing is looked at while tracing is off."""
    if not tracing.enabled():
        return tracing.NO_SPAN
    carried = [m.headers for m in batch if m.headers and "traceparent" in m.headers]
    parent, links = (carried[0], carried[1:]) if carried else (None, [])
    what = {"stream": projection.stream, "events": len(batch)}
    return tracing.span(f"project {projection.stream}", tracing.CONSUMER, parent=parent, links=links, attributes=what)


class _Pipeline:
    """Applies batches one transaction after another while the caller reads and decodes the next batch, so
    Python's work and Postgres's overlap (each alone was about half of a replay's time)."""

    def __init__(
        self, pool: asyncpg.Pool, projection: Projection, channel: str, before_commit: BeforeCommit | None = None
    ) -> None:
        self._pool = pool
        self._projection = projection
        self._channel = channel
        self._before_commit = before_commit
        self._running: asyncio.Task[int] | None = None

    async def submit(self, batch: list[Msg]) -> int | None:
        """Start applying `batch` once the one before is committed; returns the position that one reached."""
        hook: tuple[BeforeCommit, list[Any]] | None = (self._before_commit, []) if self._before_commit else None
        steps = _steps(self._projection, batch, hook[1] if hook is not None else None)
        reached = await self.drain()
        self._running = asyncio.create_task(
            _apply_batch(self._pool, self._projection, self._channel, batch, steps, hook)
        )
        return reached

    async def drain(self) -> int | None:
        """Wait for the batch being applied, if any; returns its position (its error, if it failed)."""
        running, self._running = self._running, None
        return await running if running is not None else None

    def cancel(self) -> None:
        if self._running is not None:
            self._running.cancel()


async def _batch(reader: OrderedReader, first_wait: float, until: int | None = None) -> list[Msg]:
    """The messages that have arrived, up to BATCH_LIMIT (and sequence `until`). Following the stream (no `until`),
    empty if none came within `first_wait`; reading a range, that is an error (the range's end exists)."""
    batch = await reader.batch(BATCH_LIMIT, first_wait)
    if until is None:
        return batch
    if not batch:
        raise TimeoutError(f"no message within {first_wait:g} s before sequence {until}")
    return [m for m in batch if sequences(m)[0] <= until]


async def _reader_after(js: JetStreamContext, projection: Projection, position: int) -> OrderedReader:
    """The stream from the message after `position` (from the start when 0)."""
    config = (
        ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=position + 1)
        if position
        else ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    return await OrderedReader().subscribe(js, projection.filter_subject, projection.stream, config=config)


async def run_projection(
    js: JetStreamContext,
    pool: asyncpg.Pool,
    projection: Projection,
    channel: str,
    stop: asyncio.Event,
    *,
    linger: float = LINGER_SECONDS,
    before_commit: BeforeCommit | None = None,
) -> None:
    """Follow the stream until `stop` is set. A batch that is not full starts no sooner than `linger` after the one
    before, and takes what arrived meanwhile (full batches, a backlog, go straight through the pipeline).
    `before_commit`: what is done with each batch's events in its transaction (see BeforeCommit)."""
    position = await stored_position(pool, projection.stream)
    reader = await _reader_after(js, projection, position)
    log.info("projecting %s from position %d", projection.stream, position)
    pipeline = _Pipeline(pool, projection, channel, before_commit)
    loop = asyncio.get_running_loop()
    last_taken = -linger
    try:
        while not stop.is_set():
            batch = await _batch(reader, 0.5)
            if batch and len(batch) < BATCH_LIMIT:
                if (wait := last_taken + linger - loop.time()) > 0:
                    await asyncio.sleep(wait)
                # This batch waits for the one being written anyway: waiting first lets it take more.
                await pipeline.drain()
                batch += await reader.batch(BATCH_LIMIT - len(batch), 0)
            if batch:
                last_taken = loop.time()
                await pipeline.submit(batch)
            else:
                await pipeline.drain()
        await pipeline.drain()
    finally:
        pipeline.cancel()
        await reader.close()


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
    reader = await _reader_after(js, projection, position)
    pipeline = _Pipeline(pool, projection, channel)

    def reached(at: int | None) -> None:
        nonlocal position
        if at is not None:
            progress(at - position)
            position = at

    try:
        read = position
        while read < until:
            batch = await _batch(reader, 10.0, until)
            if not batch:
                break
            read = sequences(batch[-1])[0]
            reached(await pipeline.submit(batch))
        reached(await pipeline.drain())
    finally:
        pipeline.cancel()
        await reader.close()
    return position
