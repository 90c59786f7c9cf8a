"""The projector service: the only writer of the read models."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import nats.errors
from nats.aio.client import Client

from services.projector.execution_projection import execution_step
from services.projector.job_projection import job_step
from services.projector.migrate import migrate
from services.projector.stream_reader import Projection, run_projection
from shared.bus.connection import connect, disconnect
from shared.bus.leases import Leases, leases_bucket
from shared.bus.streams import ensure_streams
from shared.contracts.codec import decode_execution_event, decode_job_event
from shared.contracts.subjects import Names
from shared.db.pool import create_pool
from shared.observability.metrics import PROJECTOR_LEASES_HELD
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
        self._leases: Leases | None = None

    def projections(self) -> list[Projection]:
        n = self._names
        return [
            Projection(n.jobs_stream, n.jobs_filter, decode_job_event, job_step),
            Projection(n.executions_stream, n.executions_filter, decode_execution_event, execution_step),
        ]

    async def start(self) -> None:
        """Connect, apply migrations and make sure the streams exist."""
        self._nc = await connect(self._settings.nats_url, "projector")
        self._pool = await create_pool(self._settings.database_url, max_size=4)
        async with self._pool.acquire() as conn:
            await migrate(conn)
        js = self._nc.jetstream()
        await ensure_streams(js, self._settings)
        self._leases = Leases(await leases_bucket(js, self._settings), self._settings.worker_id)

    async def _hold(self, key: str, stop: asyncio.Event, halt: asyncio.Event) -> None:
        """Renew the lease until `stop`; set `halt` when it is lost or on the way out."""
        assert self._leases is not None
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.lease_ttl_seconds / 3)
                if stop.is_set():
                    return
                try:
                    if not await self._leases.renew(key):
                        log.warning("lost the lease on %s: another projector writes it now", key)
                        return
                except (nats.errors.Error, TimeoutError) as exc:
                    log.warning("could not renew %s, retrying: %s", key, exc)
        finally:
            halt.set()

    async def _supervise(self, projection: Projection, stop: asyncio.Event) -> None:
        """Project the stream while holding its lease; as a standby, wait for the lease."""
        assert self._nc is not None and self._pool is not None and self._leases is not None
        key = f"projector.{projection.stream}"
        standby_logged = False
        while not stop.is_set():
            try:
                held = await self._leases.acquire(key)
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("could not reach the leases bucket: %s", exc)
                held = False
            if not held:
                if not standby_logged:
                    log.info("standing by for %s (%s holds it)", projection.stream, await self._owner(key))
                    standby_logged = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.lease_ttl_seconds / 3)
                continue
            standby_logged = False
            PROJECTOR_LEASES_HELD.inc()
            halt = asyncio.Event()
            keeper = asyncio.create_task(self._hold(key, stop, halt))
            try:
                await run_projection(self._nc.jetstream(), self._pool, projection, self._names.projection_channel, halt)
            except Exception as exc:
                # Nothing was committed for the failed batch: resume from the stored position after a pause.
                log.exception("projection %s failed, restarting: %s", projection.stream, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RESTART_DELAY_SECONDS)
            finally:
                PROJECTOR_LEASES_HELD.dec()
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
                # Stopping or failed: hand the stream over at once rather than at expiry (after a failure this
                # projector may well take it again).
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    await self._leases.release(key)

    async def _owner(self, key: str) -> str:
        assert self._leases is not None
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            return await self._leases.owner(key) or "nobody"
        return "unknown"

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
