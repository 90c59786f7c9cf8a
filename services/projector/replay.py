"""`scheduler replay`: rebuild the read models from the streams into fresh tables, then swap them in atomically.

1. Build: migrations and every event up to the streams' current ends go into a schema of their own
   (`replay_build`), while the live projector keeps serving the live tables.
2. Take over: the replay takes the projector leases of both streams, so the live projector stops writing (it
   notices within a lease renewal and stands by), and waits one lease TTL for it.
3. Catch up and swap: the events that arrived meanwhile are applied to the new tables, then one transaction renames
   the live schema to `replay_previous` and the new one into its place. Readers see the old tables or the new ones,
   never a mix. The previous tables are dropped unless asked to keep them.
4. Hand back: the leases are released; a projector takes them and resumes from the new tables' stored positions.

After a purge (services/projector/retention.py) the streams no longer hold the purged executions' events. The new
tables start from the live tables' horizon, so they hold exactly the executions the live ones do; what the events
left cannot rebuild is taken over from the live tables at the swap: the purged executions' counts, and the last run
of a job none of whose runs is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import nats.errors

from services.projector.migrate import migrate
from services.projector.retention import purge_to, stored_horizon
from services.projector.service import projections as projections_of
from services.projector.stream_reader import apply_range
from shared.bus.connection import connect, disconnect
from shared.bus.leases import Leases, leases_bucket
from shared.contracts.subjects import Names
from shared.db.pool import create_pool
from shared.runtime.periodic import periodically
from shared.settings import Settings

log = logging.getLogger(__name__)

BUILD_SCHEMA = "replay_build"
PREVIOUS_SCHEMA = "replay_previous"
LIVE_SCHEMA = "public"


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """`seconds` in all; of them, `applying_seconds` rebuilding (applying events, building indexes) and
    `waiting_seconds` waiting for the live projector to stand by (a lease TTL, whatever the store's size)."""

    events: int
    seconds: float
    positions: dict[str, int]
    applying_seconds: float
    waiting_seconds: float

    @property
    def rate(self) -> float:
        """Events applied per second of rebuilding: the wait for the live projector is not the rebuild's speed."""
        return self.events / self.applying_seconds if self.applying_seconds > 0 else float(self.events)


async def replay(
    settings: Settings,
    *,
    total: Callable[[int], None] = lambda _n: None,
    progress: Callable[[int], None] = lambda _n: None,
    keep_previous: bool = False,
) -> ReplayReport:
    """Rebuild and swap; `total` hears how many events there are to apply, `progress` how many were applied."""
    started = time.monotonic()
    projections = projections_of(Names(settings.namespace))
    channel = f"{settings.namespace}_replay"  # not the live channel: the api must not take replay positions as live
    nc = await connect(settings.nats_url, "replay")
    admin = await asyncpg.connect(settings.database_url)
    pool: asyncpg.Pool | None = None
    applied = 0
    applying = waiting = 0.0

    def count(n: int) -> None:
        nonlocal applied
        applied += n
        progress(n)

    try:
        js = nc.jetstream()
        await admin.execute(f"DROP SCHEMA IF EXISTS {BUILD_SCHEMA} CASCADE")
        await admin.execute(f"CREATE SCHEMA {BUILD_SCHEMA}")
        pool = await create_pool(settings.database_url, max_size=2, schema=BUILD_SCHEMA)
        async with pool.acquire() as conn:
            await migrate(conn)
            await purge_to(conn, settings.retention, datetime.now(UTC), await _live_horizon(admin))
        ends = {p.stream: (await js.stream_info(p.stream)).state.last_seq for p in projections}
        total(sum(ends.values()))
        mark = time.monotonic()
        async with _bulk_load(admin, BUILD_SCHEMA):
            for p in projections:
                await apply_range(js, pool, p, channel, ends[p.stream], count)
        applying += time.monotonic() - mark

        leases = Leases(await leases_bucket(js, settings), f"replay@{socket.gethostname()}:{os.getpid()}")
        keys = [f"projector.{p.stream}" for p in projections]
        for key in keys:  # taken over, not waited for: a live projector holds its lease for as long as it runs
            await leases.take_over(key)
        done = asyncio.Event()
        keeper = asyncio.create_task(_renew(leases, keys, settings.lease_ttl_seconds / 3, done))
        try:
            mark = time.monotonic()
            await asyncio.sleep(settings.lease_ttl_seconds)  # the live projector notices within a renewal
            waiting = time.monotonic() - mark
            ends = {p.stream: (await js.stream_info(p.stream)).state.last_seq for p in projections}
            total(sum(ends.values()) - applied)
            mark = time.monotonic()
            for p in projections:
                await apply_range(js, pool, p, channel, ends[p.stream], count)
            applying += time.monotonic() - mark
            await _take_over_the_purged(admin, pool, settings)
            positions = {
                r["stream"]: r["position"] for r in await pool.fetch("SELECT stream, position FROM projector_positions")
            }
            await pool.close()
            pool = None
            async with admin.transaction():
                await admin.execute(f"DROP SCHEMA IF EXISTS {PREVIOUS_SCHEMA} CASCADE")
                await admin.execute(f"ALTER SCHEMA {LIVE_SCHEMA} RENAME TO {PREVIOUS_SCHEMA}")
                await admin.execute(f"ALTER SCHEMA {BUILD_SCHEMA} RENAME TO {LIVE_SCHEMA}")
            if not keep_previous:
                await admin.execute(f"DROP SCHEMA {PREVIOUS_SCHEMA} CASCADE")
        finally:
            done.set()
            await asyncio.gather(keeper, return_exceptions=True)
            await leases.release_all()
        return ReplayReport(
            events=applied,
            seconds=time.monotonic() - started,
            positions=positions,
            applying_seconds=applying,
            waiting_seconds=waiting,
        )
    finally:
        if pool is not None:
            await pool.close()
        await admin.close()
        await disconnect(nc)


async def _live_horizon(admin: asyncpg.Connection) -> datetime | None:
    """The live tables' retention horizon (None: nothing purged, or tables from before retention)."""
    try:
        return await stored_horizon(admin)
    except asyncpg.UndefinedTableError:
        return None


async def _take_over_the_purged(admin: asyncpg.Connection, pool: asyncpg.Pool, settings: Settings) -> None:
    """With the projector's leases held (nobody writes either side): purge both sides to the live horizon, then take
    over what the events no longer tell: the purged counts (and the counter rows only purged rows made), the last
    runs of jobs with no run left in the stream, and the backfills whose events have aged out of it."""
    horizon = await _live_horizon(admin)
    if horizon is None:
        return
    now = datetime.now(UTC)
    await purge_to(admin, settings.retention, now, horizon)
    async with pool.acquire() as conn, conn.transaction():
        await purge_to(conn, settings.retention, now, horizon)
        await conn.execute("DELETE FROM execution_stats_purged")
        await conn.execute(f"INSERT INTO execution_stats_purged SELECT * FROM {LIVE_SCHEMA}.execution_stats_purged")
        await conn.execute(f"INSERT INTO job_runs SELECT * FROM {LIVE_SCHEMA}.job_runs ON CONFLICT (job_id) DO NOTHING")
        # Backfills whose first events the stream no longer holds (a backfill's row is kept; its events age out).
        await conn.execute(f"INSERT INTO backfills SELECT * FROM {LIVE_SCHEMA}.backfills ON CONFLICT (id) DO NOTHING")
        # A counter row stays once made, at zero when its executions are purged (or moved on to other statuses).
        await conn.execute(
            "INSERT INTO execution_stats (account_id, status, executions, duration_ms_sum, durations)"
            f" SELECT account_id, status, 0, 0, 0 FROM {LIVE_SCHEMA}.execution_stats ON CONFLICT DO NOTHING"
        )


@contextlib.asynccontextmanager
async def _bulk_load(admin: asyncpg.Connection, schema: str) -> AsyncIterator[None]:
    """Load without the secondary indexes, then build them once: maintaining eight indexes row by row costs more
    than everything else a replay does. Unique indexes stay, for the ON CONFLICT rules the projections rely on."""
    # A partitioned table's indexes only (a partition's go with them and come back with them).
    indexes = await admin.fetch(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i"
        " JOIN pg_class c ON c.relname = i.indexname JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = $1"
        " JOIN pg_index x ON x.indexrelid = c.oid JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE i.schemaname = $1 AND NOT x.indisunique AND NOT t.relispartition",
        schema,
    )
    for row in indexes:
        await admin.execute(f'DROP INDEX {schema}."{row["indexname"]}"')
    try:
        yield
    finally:
        for row in indexes:
            # A partitioned table's index is listed ON ONLY the table: made so, it would leave the partitions bare.
            await admin.execute(row["indexdef"].replace(" ON ONLY ", " ON ", 1))


async def _renew(leases: Leases, keys: list[str], every: float, done: asyncio.Event) -> None:
    """Keep the projector leases until `done`: a renewal that fails is tried again next time, key by key."""

    async def renew_all() -> None:
        for key in keys:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await leases.renew(key)

    await periodically(renew_all, every, done, what="renew the projector leases")
