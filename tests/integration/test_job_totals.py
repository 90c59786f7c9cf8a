"""The jobs list's `total`: read from the per-account counters when the list is not a search, counted otherwise,
and equal to counting the rows either way, through creates, pauses and deletes in several accounts."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest

from services.api.core.job_queries import JobFilter, count_jobs
from services.projector.job_projection import apply_job_event
from services.projector.migrate import migrate
from shared.contracts.jobs import JobDeleted, JobPaused
from shared.contracts.schedules import IntervalSchedule
from shared.db.pool import create_pool
from tests.factories import NOW, job_created, job_following, job_state

pytestmark = pytest.mark.integration

FILTERS = [
    JobFilter(),
    JobFilter(enabled=True),
    JobFilter(enabled=False),
    JobFilter(text="nightly"),
    JobFilter(kind="interval"),
    JobFilter(text="nightly", enabled=False),
]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


async def rows_counted(pool: asyncpg.Pool, accounts: frozenset[uuid.UUID] | None, found: JobFilter) -> int:
    """The plain count the totals must equal."""
    args: list[object] = []
    return int(await pool.fetchval(f"SELECT count(*) FROM jobs j WHERE {found.where(accounts, args)}", *args))


async def test_totals_equal_the_rows_counted_for_every_filter_and_scope(pool: asyncpg.Pool) -> None:
    rng = random.Random(17)
    accounts = [uuid.uuid4() for _ in range(3)]
    sequence = 0
    async with pool.acquire() as conn:
        for n in range(120):
            state = job_state(
                account_id=rng.choice(accounts),
                name=rng.choice(["nightly report", "hourly sync", "cleanup"]) + f" {n}",
                enabled=rng.random() < 0.7,
                **({"schedule": IntervalSchedule(every_seconds=60, anchor=NOW)} if rng.random() < 0.3 else {}),
            )
            sequence += 1
            await apply_job_event(conn, job_created(state), sequence)
            fate = rng.random()
            if fate < 0.2:
                sequence += 1
                await apply_job_event(conn, job_following(JobDeleted, state, 2), sequence)
            elif fate < 0.4 and state.enabled:
                sequence += 1
                await apply_job_event(
                    conn, job_following(JobPaused, msgspec.structs.replace(state, enabled=False), 2), sequence
                )
    scopes: list[frozenset[uuid.UUID] | None] = [
        None,
        frozenset(accounts[:1]),
        frozenset(accounts[1:]),
        frozenset({uuid.uuid4()}),
    ]
    for scope in scopes:
        for found in FILTERS:
            assert await count_jobs(pool, scope, found) == await rows_counted(pool, scope, found), (scope, found)


async def test_an_unsearched_total_comes_from_the_counters_not_the_rows(pool: asyncpg.Pool) -> None:
    """Constant time: the total of a list that is not a search reads the counters (shown by moving them alone)."""
    state = job_state(name="nightly report")
    async with pool.acquire() as conn:
        await apply_job_event(conn, job_created(state), 1)
        await conn.execute("UPDATE job_stats SET total = total + 100 WHERE account_id = $1", state.account_id)
    scope = frozenset({state.account_id})
    assert await count_jobs(pool, scope, JobFilter()) == 101
    assert await count_jobs(pool, scope, JobFilter(text="nightly")) == 1
