"""Following a busy stream, the projector applies what arrives in a few transactions rather than one per handful of
events, and still applies every event once and in order.

Events come one every few milliseconds (as results do at a few hundred executions a second). With the linger off,
each transaction takes the little that arrived while the one before was written; with it, a transaction starts at
most once per linger and takes everything that came meanwhile.
"""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import StreamConfig
from prometheus_client import REGISTRY

from services.projector.migrate import migrate
from services.projector.stream_reader import run_projection, stored_position
from shared.db.pool import create_pool
from tests.projections import marker_projection, markers
from tests.waiting import eventually

pytestmark = pytest.mark.integration

EVENTS = 120
PACE_SECONDS = 0.003  # the publisher's pace (the load), not a wait for a condition
LINGER = 0.05


async def _project(nats_url: str, database_url: str, stream: str, linger: float) -> tuple[float, float]:
    """Publish EVENTS events at a steady pace while a projection follows them: the transactions it used, and how
    long the publishing took."""
    nc = await nats.connect(nats_url)
    pool = await create_pool(database_url)
    stop = asyncio.Event()
    projection = marker_projection(stream)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"]))
        async with pool.acquire() as conn:
            await migrate(conn)
        following = asyncio.create_task(run_projection(js, pool, projection, "linger_test", stop, linger=linger))
        loop = asyncio.get_running_loop()
        began = loop.time()
        for n in range(1, EVENTS + 1):
            await js.publish(f"{stream}.e", str(n).encode())
            await asyncio.sleep(PACE_SECONDS)
        publishing = loop.time() - began

        async def caught_up() -> int | None:
            position = await stored_position(pool, stream)
            return position if position == EVENTS else None

        await eventually(caught_up, timeout=30, what=f"{stream} projected to its last event")
        stop.set()
        await following
        # Every event applied once, in order (the marker of event n is at sequence n).
        assert await markers(pool, stream) == [(f"marker {stream} {n}", n) for n in range(1, EVENTS + 1)]
        batches = REGISTRY.get_sample_value("scheduler_projected_batches_total", {"stream": stream})
        assert batches is not None
        return batches, publishing
    finally:
        stop.set()
        await pool.close()
        await nc.close()


async def test_a_busy_stream_is_applied_in_few_transactions_and_every_event_once(
    nats_url: str, database_url: str
) -> None:
    lingering, publishing = await _project(nats_url, database_url, "LINGERON", LINGER)
    # One transaction per linger while the events came, and a few more at the edges (the first event goes at once,
    # the last may start its own).
    assert lingering <= publishing / LINGER + 4, f"{lingering:g} transactions for {EVENTS} events in {publishing} s"
    # The same load with the linger off: each transaction takes the little that arrived while the one before was
    # written. This shows the linger is what groups them (and that the bound above can fail).
    eager, _ = await _project(nats_url, database_url, "LINGEROFF", 0.0)
    assert eager >= 2 * lingering, f"{eager:g} transactions without the linger, {lingering:g} with it"
