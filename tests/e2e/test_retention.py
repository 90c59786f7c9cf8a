"""Retention on real servers: executions older than the retention leave the EXECUTIONS stream (its age limit) and the
executions table (a partition dropped whole), the statistics still count them, and a replay afterwards rebuilds the
same read models as the live ones for what is retained.

The retention is 20 s with 5 s partitions here, so the test sees a purge within a minute.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import nats
import pytest

from services.api.core.stats import counter_totals
from services.projector.replay import replay
from shared.bus.executions import publish_requested, publish_result
from shared.bus.streams import ensure_streams
from shared.contracts.executions import ExecutionEvent, ExecutionRequested
from shared.contracts.subjects import Names
from shared.db.pool import create_pool
from shared.settings import Settings
from tests.e2e.harness import running
from tests.e2e.test_replay import content_hash
from tests.factories import executions_of, job_state
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

RETENTION_SECONDS = 20
TABLES = ("executions", "execution_stats", "execution_stats_purged", "execution_retention", "job_runs")
KINDS = {"ExecutionStarted": "started", "ExecutionSucceeded": "succeeded", "ExecutionFailed": "failed"}


async def publish(js: nats.js.JetStreamContext, names: Names, events: list[ExecutionEvent]) -> int:
    """Publish the events in order; returns the stream sequence of the last request."""
    last = 0
    for event in events:
        if isinstance(event, ExecutionRequested):
            last = await publish_requested(js, names, event)
        else:
            kind = KINDS[type(event).__name__]
            await publish_result(js, names, kind, event, f"{event.execution_id}:{kind}")
    return last


async def test_old_executions_leave_the_stream_and_the_table_stay_counted_and_a_replay_agrees(
    settings: Settings,
) -> None:
    settings = settings.replaced(
        execution_retention_days=RETENTION_SECONDS / 86_400, execution_partition_seconds=5, lease_ttl_seconds=2
    )
    names = Names(settings.namespace)
    nc = await nats.connect(settings.nats_url)
    pool = await create_pool(settings.database_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        info = await js.stream_info(names.executions_stream)
        assert info.config.max_age == RETENTION_SECONDS + 10  # the retention and two partitions
        job = job_state()

        async def rows() -> int:
            try:
                return int(await pool.fetchval("SELECT count(*) FROM executions WHERE account_id = $1", job.account_id))
            except asyncpg.UndefinedTableError:  # the projector has not applied its migrations yet
                return -1

        def rows_are(n: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return await rows() == n

            return check

        async with running(settings, ["projector"]):
            old = executions_of(job, 10, datetime.now(UTC))
            old_end = await publish(js, names, old)
            await eventually(rows_are(10), timeout=60, what="the old executions projected")
            published = (await js.stream_info(names.executions_stream)).state.last_seq

            async def projected_to_old_end() -> bool:
                # Ten rows are there with the tenth's request: its result may be in the projector's next batch.
                position = await pool.fetchval(
                    "SELECT position FROM projector_positions WHERE stream = $1", names.executions_stream
                )
                return position is not None and position >= published

            await eventually(projected_to_old_end, timeout=30, what="the old executions' results projected")
            counted = (await counter_totals(pool, frozenset({job.account_id}))).by_status

            await eventually(rows_are(0), timeout=60, what="the old executions purged from the table")
            kept = executions_of(job, 6, datetime.now(UTC))
            await publish(js, names, kept)
            await eventually(rows_are(6), what="the new executions projected")

            async def gone_from_the_stream() -> bool:
                return (await js.stream_info(names.executions_stream)).state.first_seq > old_end

            await eventually(gone_from_the_stream, timeout=60, what="the old executions gone from the stream")
            totals = (await counter_totals(pool, frozenset({job.account_id}))).by_status
            assert {s: n for s, n in totals.items() if n} == {"success": 5 + 3, "failure": 5 + 3}
            assert {s: n for s, n in counted.items() if n} == {"success": 5, "failure": 5}
        live = await content_hash(settings.database_url, tables=TABLES)

        await replay(settings)
        assert await rows() == 6
        assert await content_hash(settings.database_url, tables=TABLES) == live
        totals = (await counter_totals(pool, frozenset({job.account_id}))).by_status
        assert {s: n for s, n in totals.items() if n} == {"success": 8, "failure": 8}
    finally:
        await pool.close()
        await nc.close()
