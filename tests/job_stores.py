"""The job event store on real NATS, for tests that write jobs and watch a ticker or a reader take them in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from nats.js import JetStreamContext

from shared.bus.connection import servers
from shared.bus.job_store import NatsJobEventStore
from shared.bus.streams import ensure_streams
from shared.contracts.subjects import Names
from shared.settings import Settings


@asynccontextmanager
async def job_store(settings: Settings) -> AsyncIterator[tuple[JetStreamContext, NatsJobEventStore]]:
    """The streams (created if missing) and the job event store over them; the connection closed after."""
    nc = await nats.connect(servers(settings.nats_url))
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        yield js, NatsJobEventStore(js, Names(settings.namespace))
    finally:
        await nc.close()
