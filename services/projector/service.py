"""The projector service: the only writer of the read models."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from nats.js import JetStreamContext

from services.projector.backfill_runner import BackfillRunner
from services.projector.chain_runner import ChainRunner
from services.projector.execution_projection import execution_step
from services.projector.job_projection import job_step
from services.projector.migrate import migrate
from services.projector.retention import keep_history
from services.projector.stream_reader import Projection, run_projection
from shared.bus.connection import BUS_ERRORS, connect, disconnect
from shared.bus.job_store import NatsJobEventStore
from shared.bus.leases import Leases, leases_bucket
from shared.bus.streams import ensure_streams
from shared.contracts.backfills import BACKFILLS_LEASE
from shared.contracts.codec import decode_execution_event, decode_job_event
from shared.contracts.subjects import Names
from shared.db.pool import create_pool
from shared.observability.metrics import PROJECTION_LAG, PROJECTOR_LEASES_HELD
from shared.runtime.periodic import pause, periodically
from shared.runtime.tasks import task_group
from shared.settings import Settings

log = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 1.0
# The execution history's upkeep runs this often at most (more often with narrow partitions: a quarter of one).
UPKEEP_EVERY_SECONDS = 600.0
# Errors an upkeep run meets that the next run may not: logged, and the projection goes on.
UPKEEP_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
# Errors of a bus that is briefly unreachable: a lease renewal that meets one tries again next time.


def projections(names: Names) -> list[Projection]:
    """One projection per stream: job events and execution events."""
    return [
        Projection(names.jobs_stream, names.jobs_filter, decode_job_event, job_step),
        Projection(names.executions_stream, names.executions_filter, decode_execution_event, execution_step),
    ]


class Projector:
    """Runs one projection per stream; a failed batch restarts its projection from the stored position."""

    def __init__(self, settings: Settings, js: JetStreamContext, pool: asyncpg.Pool, leases: Leases) -> None:
        self._settings = settings
        self._names = Names(settings.namespace)
        self._js = js
        self._pool = pool
        self._leases = leases
        store = NatsJobEventStore(js, self._names)
        self._chains = ChainRunner(js, store, self._names, fresh_for_seconds=settings.duplicate_window_seconds)
        self._backfills = BackfillRunner(js, pool, store, self._names, settings.retention)

    def projections(self) -> list[Projection]:
        return projections(self._names)

    async def _hold(self, key: str, stop: asyncio.Event, halt: asyncio.Event) -> None:
        """Renew the lease until `stop`; set `halt` when it is lost or on the way out."""

        renewed_at = time.monotonic()

        async def renew() -> bool:
            nonlocal renewed_at
            if time.monotonic() - renewed_at > self._settings.lease_ttl_seconds:
                # Renewals that failed for a whole TTL (the bus unreachable): the lease may have expired and been
                # taken, so stop rather than write beside its new holder.
                log.warning("could not renew the lease on %s for a whole TTL: giving it up", key)
                return False
            if await self._leases.renew(key):
                renewed_at = time.monotonic()
                return True
            log.warning("lost the lease on %s: another projector writes it now", key)
            return False

        try:
            every = self._settings.lease_ttl_seconds / 3
            await periodically(renew, every, stop, what=f"renew {key}", retry_on=BUS_ERRORS, log=log)
        finally:
            halt.set()

    async def _acquire(self, key: str) -> bool:
        """Take the lease `key` if nobody holds it (False, too, when the bus cannot be reached)."""
        try:
            return await self._leases.acquire(key)
        except BUS_ERRORS as exc:
            log.warning("could not reach the leases bucket: %s", exc)
            return False

    async def _supervise(self, projection: Projection, stop: asyncio.Event) -> None:
        """Project the stream while holding its lease; as a standby, wait for the lease."""
        key = f"projector.{projection.stream}"
        standby_logged = False
        while not stop.is_set():
            if not await self._acquire(key):
                if not standby_logged:
                    log.info("standing by for %s (%s holds it)", projection.stream, await self._owner(key))
                    standby_logged = True
                await pause(stop, self._settings.lease_ttl_seconds / 3)
                continue
            standby_logged = False
            PROJECTOR_LEASES_HELD.inc()
            # The execution history is kept by whoever projects it, so one projector at a time purges (and none
            # while a replay holds the lease).
            executions = projection.stream == self._names.executions_stream
            try:
                async with self._holding(key, stop) as halt:
                    upkeep = await self._keep_history(halt) if executions else None
                    try:
                        # The live projection of results fires the chained jobs they lead to (replays do not).
                        chains = self._chains.before_commit if executions else None
                        await run_projection(
                            self._js, self._pool, projection, self._names.projection_channel, halt, before_commit=chains
                        )
                    finally:
                        if upkeep is not None:
                            upkeep.cancel()
                            await asyncio.gather(upkeep, return_exceptions=True)
            except Exception as exc:
                # Nothing was committed for the failed batch: resume from the stored position after a pause.
                log.exception("projection %s failed, restarting: %s", projection.stream, exc)
                await pause(stop, RESTART_DELAY_SECONDS)
            finally:
                PROJECTOR_LEASES_HELD.dec()
                # Another projector writes it now (or will): this one's last figure would be a stale alarm.
                PROJECTION_LAG.labels(projection.stream).set(0)

    @contextlib.asynccontextmanager
    async def _holding(self, key: str, stop: asyncio.Event) -> AsyncIterator[asyncio.Event]:
        """The lease `key` (acquired) kept renewed; yields the event set when it is lost. On the way out it is handed
        over at once rather than at expiry (after a failure this projector may well take it again)."""
        halt = asyncio.Event()
        keeper = asyncio.create_task(self._hold(key, stop, halt))
        try:
            yield halt
        finally:
            halt.set()
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            with contextlib.suppress(*BUS_ERRORS):
                await self._leases.release(key)

    async def _run_backfills(self, stop: asyncio.Event) -> None:
        """Run the backfills while holding their lease (one runner for the whole system); as a standby, wait."""
        while not stop.is_set():
            if not await self._acquire(BACKFILLS_LEASE):
                await pause(stop, self._settings.lease_ttl_seconds / 3)
                continue
            try:
                async with self._holding(BACKFILLS_LEASE, stop) as halt:
                    await self._backfills.run(halt)
            except Exception as exc:
                log.exception("the backfills' runner failed, restarting: %s", exc)
                await pause(stop, RESTART_DELAY_SECONDS)

    async def _keep_history(self, halt: asyncio.Event) -> asyncio.Task[None]:
        """Make the executions table's partitions and purge what is older than the retention: once now, then in
        the background periodically until `halt`."""
        retention = self._settings.retention

        async def upkeep() -> None:
            async with self._pool.acquire() as conn:
                await keep_history(conn, retention, datetime.now(UTC))

        every = min(UPKEEP_EVERY_SECONDS, retention.partition_seconds / 4)
        try:
            # Before the projection starts: a partition attached while rows of its range are being written into the
            # default partition fails their batch (it is written again, but why fail it).
            await upkeep()
        except UPKEEP_ERRORS as exc:
            log.warning("could not keep the execution history, retrying in %.1f s: %s", every, exc)
        # Whatever fails is tried again next time: the projection goes on meanwhile (the default partition takes rows
        # a missing partition would have held).
        return asyncio.create_task(
            periodically(upkeep, every, halt, what="keep the execution history", retry_on=UPKEEP_ERRORS, log=log)
        )

    async def _owner(self, key: str) -> str:
        with contextlib.suppress(*BUS_ERRORS):
            return await self._leases.owner(key) or "nobody"
        return "unknown"

    async def run(self, stop: asyncio.Event) -> None:
        """Project both streams until `stop` is set."""
        async with task_group() as tg:
            for projection in self.projections():
                tg.create_task(self._supervise(projection, stop))
            tg.create_task(self._run_backfills(stop))


@contextlib.asynccontextmanager
async def open_projector(settings: Settings) -> AsyncIterator[Projector]:
    """The projector, connected to NATS and Postgres with migrations applied and the streams checked; its
    connections are closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        nc = await connect(settings.nats_url, "projector")
        stack.push_async_callback(disconnect, nc)
        pool = await create_pool(settings.database_url, max_size=4)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await migrate(conn)
        js = nc.jetstream()
        await ensure_streams(js, settings)
        leases = Leases(await leases_bucket(js, settings), settings.worker_id)
        yield Projector(settings, js, pool, leases)
