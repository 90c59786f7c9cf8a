"""The projector service: the only writer of the read models."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from nats.aio.client import Client

from services.projector.execution_projection import apply_execution_event
from services.projector.job_projection import apply_job_event
from services.projector.migrate import migrate
from services.projector.stream_reader import Projection, run_projection
from shared.bus.connection import connect, disconnect
from shared.bus.streams import ensure_streams
from shared.contracts.codec import decode_execution_event, decode_job_event
from shared.contracts.subjects import Names
from shared.db.pool import create_pool
from shared.settings import Settings

log = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 1.0


class Projector:
    """Runs one projection per stream; a failed batch restarts its projection from the stored position."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._names = Names(settings.namespace)
        self._nc: Client | None = None
        self._pool: asyncpg.Pool | None = None

    def projections(self) -> list[Projection]:
        n = self._names
        return [
            Projection(n.jobs_stream, n.jobs_filter, decode_job_event, apply_job_event),
            Projection(n.executions_stream, n.executions_filter, decode_execution_event, apply_execution_event),
        ]

    async def start(self) -> None:
        """Connect, apply migrations and make sure the streams exist."""
        self._nc = await connect(self._settings.nats_url, "projector")
        self._pool = await create_pool(self._settings.database_url, max_size=4)
        async with self._pool.acquire() as conn:
            await migrate(conn)
        await ensure_streams(self._nc.jetstream(), self._settings)

    async def _supervise(self, projection: Projection, stop: asyncio.Event) -> None:
        assert self._nc is not None and self._pool is not None
        while not stop.is_set():
            try:
                await run_projection(self._nc.jetstream(), self._pool, projection, self._names.projection_channel, stop)
            except Exception as exc:
                # Nothing was committed for the failed batch: resume from the stored position after a pause.
                log.exception("projection %s failed, restarting: %s", projection.stream, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RESTART_DELAY_SECONDS)

    async def run(self, stop: asyncio.Event) -> None:
        """Project both streams until `stop` is set, then close connections."""
        if self._nc is None:
            await self.start()
        try:
            await asyncio.gather(*(self._supervise(p, stop) for p in self.projections()))
        finally:
            await self.close()

    async def close(self) -> None:
        if self._nc is not None:
            await disconnect(self._nc)
            self._nc = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def build_projector(settings: Settings) -> Projector:
    """Wire the projector from settings; nothing connects until start()."""
    return Projector(settings)
