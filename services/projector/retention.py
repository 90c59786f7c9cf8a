"""Execution history kept for the retention (shared/domain/retention.py): the executions table's partitions made
ahead of time, and the rows of occurrences before the horizon purged, a partition at a time.

A purge takes two maintenance runs. A run first purges what is before the horizon an earlier run stored, then stores
the new horizon. Once a horizon is stored no write of the projector touches a row before it (each checks it), so by
the next run nothing changes those rows any more: they are counted and dropped without locking the projector out.

Purging moves each row's counts from execution_stats (the rows the table holds) to execution_stats_purged; the APIs
report the two together, so a purge changes no figure they show. A replay, whose rebuilt execution_stats counts the
rows it rebuilt, takes execution_stats_purged over from the tables it replaces (services/projector/replay.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from shared.db.pool import DbConnection
from shared.domain.retention import Retention

log = logging.getLogger(__name__)

_LOCK_KEY = 0x5C4ED01F
DEFAULT_PARTITION = "executions_default"

# The counts of `{table}`'s rows before $1, moved from execution_stats to execution_stats_purged; returns how many.
_MOVE_COUNTS = """
WITH gone AS (
    SELECT account_id, status, count(*) AS n, COALESCE(sum(duration_ms), 0) AS ms, count(duration_ms) AS timed
    FROM {table} WHERE nominal_time < $1
    GROUP BY account_id, status
), kept AS (
    INSERT INTO execution_stats_purged AS s (account_id, status, executions, duration_ms_sum, durations)
    SELECT account_id, status, n, ms, timed FROM gone
    ON CONFLICT (account_id, status) DO UPDATE SET
        executions = s.executions + EXCLUDED.executions,
        duration_ms_sum = s.duration_ms_sum + EXCLUDED.duration_ms_sum,
        durations = s.durations + EXCLUDED.durations
), moved AS (
    UPDATE execution_stats s
    SET executions = s.executions - g.n, duration_ms_sum = s.duration_ms_sum - g.ms, durations = s.durations - g.timed
    FROM gone g
    WHERE s.account_id = g.account_id AND s.status = g.status
)
SELECT COALESCE(sum(n), 0) FROM gone
"""

# A partition made while rows of its range sit in the default partition takes them along.
_TAKE_FROM_DEFAULT = f"""
WITH moved AS (
    DELETE FROM {DEFAULT_PARTITION} WHERE nominal_time >= $1 AND nominal_time < $2 RETURNING *
)
INSERT INTO {{table}} SELECT * FROM moved
"""


@dataclass(frozen=True, slots=True)
class Upkeep:
    """What one maintenance run did: partitions made and dropped, rows purged, and the horizon it left."""

    made: int
    dropped: int
    purged: int
    horizon: datetime | None


async def stored_horizon(conn: DbConnection) -> datetime | None:
    """The horizon stored in the tables `conn` sees (None: nothing purged yet)."""
    value: datetime | None = await conn.fetchval("SELECT horizon FROM execution_retention")
    return value


async def keep_history(conn: DbConnection, retention: Retention, now: datetime) -> Upkeep:
    """One maintenance run while the projector writes: purge before the stored horizon, store the retention's
    horizon at `now` (it never moves back), and make the partitions from there to a little past `now`."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        stored = await stored_horizon(conn)
        dropped, purged = await _purge(conn, stored) if stored is not None else (0, 0)
        if stored is not None:  # the links fired for occurrences the history no longer holds
            await conn.execute("DELETE FROM chain_firings WHERE fired_at < $1", stored)
        horizon = await _store(conn, stored, retention.horizon(now))
    made = await _make(conn, retention.partitions(now, horizon))
    return Upkeep(made, dropped, purged, horizon)


async def purge_to(conn: DbConnection, retention: Retention, now: datetime, horizon: datetime | None) -> Upkeep:
    """Store `horizon` (unless the stored one is later) and purge before it at once, then make the partitions: for
    tables nobody else writes (a replay's, or the live ones while a replay holds the projector's leases)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        stored = await _store(conn, await stored_horizon(conn), horizon)
        dropped, purged = await _purge(conn, stored) if stored is not None else (0, 0)
        made = await _make(conn, retention.partitions(now, stored))
    return Upkeep(made, dropped, purged, stored)


async def _store(conn: DbConnection, stored: datetime | None, wanted: datetime | None) -> datetime | None:
    if wanted is None or (stored is not None and wanted <= stored):
        return stored
    await conn.execute(
        "INSERT INTO execution_retention (horizon) VALUES ($1)"
        " ON CONFLICT (singleton) DO UPDATE SET horizon = EXCLUDED.horizon",
        wanted,
    )
    return wanted


async def _purge(conn: DbConnection, horizon: datetime) -> tuple[int, int]:
    """Rows before `horizon` counted as purged and removed: partitions wholly before it dropped, the rest deleted
    (the default partition; a partition the horizon cuts, after a change of partition width)."""
    partitions = await conn.fetch(
        "SELECT name, upper FROM execution_partitions WHERE lower < $1 ORDER BY lower", horizon
    )
    dropped = purged = 0
    for table, whole in [(p["name"], p["upper"] <= horizon) for p in partitions] + [(DEFAULT_PARTITION, False)]:
        purged += int(await conn.fetchval(_MOVE_COUNTS.format(table=table), horizon))
        if whole:
            await conn.execute(f"DROP TABLE {table}")
            await conn.execute("DELETE FROM execution_partitions WHERE name = $1", table)
            dropped += 1
        else:
            await conn.execute(f"DELETE FROM {table} WHERE nominal_time < $1", horizon)
    if purged or dropped:
        log.info("purged %d executions before %s (%d partitions dropped)", purged, horizon.isoformat(), dropped)
    return dropped, purged


async def _make(conn: DbConnection, bounds: list[tuple[datetime, datetime]]) -> int:
    """Make the partitions of `bounds` that no partition overlaps yet, each in a transaction of its own.

    Attaching a partition locks the default partition, and so every read of the executions table, until its
    transaction ends: one transaction for all of them (a first start makes the whole retention's, hundreds with a
    long one) kept the API's queries of executions waiting for seconds. Now a read waits for one partition at most.
    """
    made = 0
    for lower, upper in bounds:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            # No row may enter the default partition between moving its rows of the range out and attaching: the
            # attach would find one there and fail. Writes wait at the table itself, before a row is routed to a
            # partition (routed to the default first, a waiting row would fail once the range is attached); reads
            # go on, as this lock only holds writes back, for the milliseconds a partition takes.
            await conn.execute("LOCK TABLE ONLY executions IN SHARE ROW EXCLUSIVE MODE")
            if await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM execution_partitions WHERE lower < $2 AND $1 < upper)", lower, upper
            ):
                continue
            table = f"executions_{lower:%Y%m%d_%H%M%S}"
            await conn.execute(f"CREATE TABLE {table} (LIKE executions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            await conn.execute(_TAKE_FROM_DEFAULT.format(table=table), lower, upper)
            await conn.execute(
                f"ALTER TABLE executions ATTACH PARTITION {table}"
                f" FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
            )
            await conn.execute(
                "INSERT INTO execution_partitions (name, lower, upper) VALUES ($1, $2, $3)", table, lower, upper
            )
            made += 1
    return made
