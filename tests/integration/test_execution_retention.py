"""Execution history kept for the retention, on PostgreSQL: the executions table's time partitions made ahead and
dropped whole once older than the retention, their rows' counts still reported, late events of purged occurrences
writing nothing, and a database with executions from before partitioning keeping every row and count."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.api.core.stats import counter_totals
from services.projector.batched_writes import apply_steps
from services.projector.execution_projection import execution_step
from services.projector.migrate import _migrations, migrate
from services.projector.retention import keep_history, purge_to
from shared.contracts.executions import ExecutionEvent
from shared.db.pool import DbConnection
from shared.domain.retention import Retention
from tests.factories import NOW, executions_of, job_state
from tests.waiting import eventually

pytestmark = pytest.mark.integration

DAY = 86_400
# Two days kept, a partition a day: at NOW the horizon is the start of NOW's day minus two days.
RETENTION = Retention(2 * DAY, DAY)


async def apply(conn: DbConnection, events: list[ExecutionEvent], first: int) -> None:
    await apply_steps(conn, [s for n, e in enumerate(events, first) if (s := execution_step(e, n))])


async def rows_by_partition(conn: DbConnection) -> dict[str, int]:
    rows = await conn.fetch("SELECT tableoid::regclass::text AS part, count(*) AS n FROM executions GROUP BY 1")
    return {r["part"]: r["n"] for r in rows}


async def reported(conn: DbConnection, account: uuid.UUID) -> dict[str, int]:
    """The execution counts the APIs report for `account` (statuses counted at zero left out)."""
    return {status: n for status, n in (await counter_totals(conn, frozenset({account}))).by_status.items() if n}


async def test_partitions_are_made_ahead_and_rows_land_in_their_day(conn: DbConnection) -> None:
    upkeep = await keep_history(conn, RETENTION, NOW)
    assert upkeep.horizon == NOW - timedelta(days=2) and upkeep.made == 5  # two days back to two ahead
    assert await keep_history(conn, RETENTION, NOW) == upkeep.__class__(0, 0, 0, upkeep.horizon)
    job = job_state()
    await apply(conn, executions_of(job, 3, NOW - timedelta(days=1)) + executions_of(job, 2, NOW), 1)
    assert await rows_by_partition(conn) == {"executions_20251231_000000": 3, "executions_20260101_000000": 2}


class ReadBeforeEachPartition:
    """`conn` for keep_history, which reads the executions table on `reader` as it begins each partition's table."""

    def __init__(self, conn: DbConnection, reader: asyncpg.Connection) -> None:
        self._conn, self._reader = conn, reader
        self.reads: list[int | str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def execute(self, query: str, *args: Any) -> str:
        if query.startswith("CREATE TABLE"):
            try:
                self.reads.append(await self._reader.fetchval("SELECT count(*) FROM executions"))
            except asyncpg.LockNotAvailableError:
                self.reads.append("blocked")
        return await self._conn.execute(query, *args)


async def test_reads_of_executions_wait_for_one_partition_at_most_while_partitions_are_made(
    conn: DbConnection, database_url: str
) -> None:
    """Attaching a partition locks out every read of executions until its transaction ends: a first start makes a
    whole retention's partitions, which must not keep the API's queries waiting for all of them."""
    reader = await asyncpg.connect(database_url)
    try:
        # A lock still held is held until keep_history goes on, which waits for this read: it cannot come free.
        await reader.execute("SET lock_timeout = '1s'")
        watched = ReadBeforeEachPartition(conn, reader)
        upkeep = await keep_history(watched, Retention(30 * DAY, DAY), NOW)  # type: ignore[arg-type]
    finally:
        await reader.close()
    assert upkeep.made == 33 and watched.reads == [0] * 33  # 30 days back to two ahead: each read went through


class WriteAsAPartitionIsAttached:
    """`conn` for keep_history, which, as it attaches its first partition, starts the projector's write of an
    execution of that partition's range on `writer` and goes on once the write has either finished or waits."""

    def __init__(self, conn: DbConnection, writer: asyncpg.Connection, observer: asyncpg.Connection) -> None:
        self._conn, self._writer, self._observer = conn, writer, observer
        self.write: asyncio.Task[None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def execute(self, query: str, *args: Any) -> str:
        if query.startswith("ALTER TABLE executions ATTACH PARTITION") and self.write is None:
            lower = datetime.fromisoformat(query.split("FROM ('")[1].split("'")[0])
            self.write = asyncio.create_task(apply(self._writer, executions_of(job_state(), 1, lower), 1))
            pid = self._writer.get_server_pid()

            async def finished_or_waiting() -> bool:
                assert self.write is not None
                waits = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1"
                return self.write.done() or bool(await self._observer.fetchval(waits, pid))

            await eventually(finished_or_waiting, timeout=10, what="the write finished or waiting")
        return await self._conn.execute(query, *args)


async def test_a_write_into_a_range_being_partitioned_waits_for_the_partition(
    conn: DbConnection, database_url: str
) -> None:
    """A row written into the default partition between moving the range's rows out and attaching the partition
    would make the attach fail (the default may not hold rows of an attached range): such a write waits, then lands
    in the new partition."""
    writer, observer = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        watched = WriteAsAPartitionIsAttached(conn, writer, observer)
        upkeep = await keep_history(watched, RETENTION, NOW)  # type: ignore[arg-type]
        assert watched.write is not None
        await asyncio.wait_for(watched.write, timeout=10)
    finally:
        await writer.close()
        await observer.close()
    assert upkeep.made == 5
    assert await rows_by_partition(conn) == {"executions_20251230_000000": 1}


async def test_a_purge_drops_old_partitions_keeps_the_counts_and_ignores_late_events(conn: DbConnection) -> None:
    job = job_state()
    old, kept = executions_of(job, 4, NOW), executions_of(job, 2, NOW + timedelta(days=3))
    await keep_history(conn, RETENTION, NOW)
    await apply(conn, old[:-1], 1)  # the last execution is still running
    before = await reported(conn, job.account_id)
    assert before == {"success": 2, "failure": 1, "running": 1}

    # Three days on, the old day is past the horizon: stored first, so writes stop touching it...
    later = NOW + timedelta(days=3)
    upkeep = await keep_history(conn, RETENTION, later)
    assert upkeep.horizon == NOW + timedelta(days=1) and upkeep.purged == 0
    assert await conn.fetchval("SELECT count(*) FROM executions") == 4
    await apply(conn, old[-1:], 100)  # the running one's result, late
    assert await conn.fetchval("SELECT count(*) FROM executions WHERE status = 'running'") == 1
    assert await reported(conn, job.account_id) == before

    # ... and the next run drops it whole, its counts moved to the purged counters.
    upkeep = await keep_history(conn, RETENTION, later)
    assert (upkeep.purged, upkeep.dropped) == (4, 3)  # the days of NOW-2, NOW-1 and NOW
    assert await conn.fetchval("SELECT count(*) FROM executions") == 0
    counting = "SELECT count(*) FROM execution_stats WHERE account_id = $1 AND executions <> 0"
    assert await conn.fetchval(counting, job.account_id) == 0  # moved to the purged counts
    assert await reported(conn, job.account_id) == before

    # A late request of a purged occurrence writes no row; a new one does, and is counted beside the purged ones.
    await apply(conn, old[:1], 200)
    assert await conn.fetchval("SELECT count(*) FROM executions") == 0
    await apply(conn, kept, 300)
    assert await conn.fetchval("SELECT count(*) FROM executions") == 2
    assert await reported(conn, job.account_id) == {"success": 3, "failure": 2, "running": 1}


async def test_purge_to_purges_at_once_for_tables_nobody_writes(conn: DbConnection) -> None:
    job = job_state()
    await apply(conn, executions_of(job, 3, NOW), 1)  # before any partition: in the default partition
    assert await rows_by_partition(conn) == {"executions_default": 3}
    upkeep = await purge_to(conn, RETENTION, NOW + timedelta(days=5), NOW + timedelta(days=1))
    assert upkeep.purged == 3 and upkeep.horizon == NOW + timedelta(days=1)
    assert await conn.fetchval("SELECT count(*) FROM executions") == 0
    assert await reported(conn, job.account_id) == {"success": 2, "failure": 1}


async def test_executions_from_before_partitioning_keep_their_rows_and_counts(conn: DbConnection) -> None:
    """A database migrated before 0010 keeps every execution (in the default partition), counted as before, and
    the first upkeep moves each into its day's partition."""
    await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    await conn.execute(
        "CREATE TABLE schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for number, name, sql in _migrations():
        if number < 10:
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", number, name)
    # Today's statements read the retention's horizon (0010) and write a backfill's id (0015): stand-ins let them
    # run on the old schema (0015 adds the column only where it is missing).
    await conn.execute("CREATE TABLE execution_retention (horizon timestamptz)")
    await conn.execute("ALTER TABLE executions ADD COLUMN backfill_id uuid")
    job = job_state()
    await apply(conn, executions_of(job, 6, NOW - timedelta(hours=2)), 1)
    await conn.execute("DROP TABLE execution_retention")
    rows = "SELECT id, status, duration_ms FROM executions ORDER BY id"
    stats = "SELECT * FROM execution_stats ORDER BY account_id, status"
    before, counted = await conn.fetch(rows), await conn.fetch(stats)
    assert len(before) == 6

    assert (await migrate(conn))[0] == "0010_executions_partitioned_by_time.sql"
    assert await conn.fetch(rows) == before and await conn.fetch(stats) == counted
    await keep_history(conn, Retention(30 * DAY, DAY), NOW)
    assert await rows_by_partition(conn) == {"executions_20251231_000000": 6}
    assert await conn.fetch(rows) == before and await conn.fetch(stats) == counted
