"""Applying a batch grouped by statement leaves the read models exactly as applying its events one by one does.

Random histories (every kind of transition, redelivered events, lifecycles interleaved) are applied both ways into
two schemas of one database, and the tables are compared by content hash.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from services.projector.batched_writes import Step, apply_steps
from services.projector.execution_projection import execution_step
from services.projector.job_projection import job_step
from services.projector.migrate import migrate
from shared.contracts.executions import (
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionMissed,
    ExecutionRetryScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    envelope_of,
    missed_execution_id,
    occurrence_id,
    occurrence_requests,
)
from shared.contracts.jobs import JobDeleted, JobPaused, JobState, WebhookSpec
from shared.db.pool import create_pool
from tests.factories import NOW, job_created, job_state

pytestmark = pytest.mark.integration

TABLES = ("jobs", "webhooks", "executions", "job_runs", "execution_stats", "job_stats", "projector_positions")


def _lifecycle(rng: random.Random, state: JobState, second: int) -> list[Any]:
    """One occurrence's events in stream order: attempts that fail, retry, dead-letter and get re-driven."""
    nominal = NOW + timedelta(seconds=second)
    if rng.random() < 0.1:
        occ = occurrence_id(state.id, nominal)
        return [
            ExecutionMissed(
                execution_id=missed_execution_id(occ), occurrence_id=occ, job_id=state.id,
                account_id=state.account_id, occurred_at=nominal, nominal_time=nominal, job_name=state.name,
                policy="skip", reason="down",
            )
        ]  # fmt: skip
    (request,) = occurrence_requests(state, job_version=1, nominal_time=nominal, occurred_at=nominal, next_run_at=None)
    events: list[Any] = []
    for _ in range(4):
        events.append(request)
        common = envelope_of(request)
        if rng.random() < 0.1:
            events.append(ExecutionSkipped(**common, occurred_at=nominal, reason="still running"))
            break
        events.append(ExecutionStarted(**common, occurred_at=nominal, worker_id="w", started_at=nominal))
        done = {"occurred_at": nominal, "worker_id": "w", "started_at": nominal, "finished_at": nominal}
        if rng.random() < 0.5:
            events.append(ExecutionSucceeded(**common, **done, duration_ms=rng.randint(1, 99), response_code=200))
            break
        events.append(ExecutionFailed(**common, **done, duration_ms=5, response_code=500, error="boom"))
        later = nominal + timedelta(seconds=1)
        if rng.random() < 0.5:
            nxt = request.next_attempt(later)
            events.append(
                ExecutionRetryScheduled(
                    **common, occurred_at=later, retry_at=later, delay_seconds=1, next_execution_id=nxt.execution_id,
                    reason="500",
                )
            )  # fmt: skip
        else:
            events.append(ExecutionDeadLettered(**common, occurred_at=later, reason="out of attempts"))
            if rng.random() < 0.5:
                break
            nxt = request.next_attempt(later, redrive=True)
        request = nxt
    return events


def _history(seed: int) -> tuple[list[Any], list[Any]]:
    """(job events, execution events): interleaved lifecycles, some events delivered twice."""
    rng = random.Random(seed)
    hook = WebhookSpec(id=uuid.uuid4(), url="https://example.com/h", created_at=NOW, updated_at=NOW)
    states = [job_state("* * * * * *", name=f"j{i}", webhooks=(hook,) if i == 0 else ()) for i in range(6)]
    jobs: list[Any] = [job_created(s) for s in states]
    for s in states[:3]:
        paused = msgspec.structs.replace(s, enabled=False)
        jobs.append(JobPaused(event_id=uuid.uuid4(), job_id=s.id, account_id=s.account_id, version=2,
                              occurred_at=NOW, job=paused, next_run_at=None))  # fmt: skip
    last = states[-1]
    jobs.append(JobDeleted(event_id=uuid.uuid4(), job_id=last.id, account_id=last.account_id, version=2,
                           occurred_at=NOW, job=last, next_run_at=None))  # fmt: skip
    lives = [_lifecycle(rng, states[n % 5], n) for n in range(120)]
    executions: list[Any] = []
    while lives:
        life = rng.choice(lives)
        event = life.pop(0)
        executions.append(event)
        if rng.random() < 0.1:
            executions.append(event)  # redelivered
        if not life:
            lives.remove(life)
    rng.shuffle(jobs[len(states) :])
    return jobs, executions


async def _apply(database_url: str, schema: str, history: tuple[list[Any], list[Any]], grouped: bool) -> None:
    pool = await create_pool(database_url, max_size=1, schema=schema)
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"CREATE SCHEMA {schema}")
            await migrate(conn)
            jobs, executions = history
            async with conn.transaction():
                await apply_steps(conn, [job_step(e, n) for n, e in enumerate(jobs, 1)], grouped=grouped)
                steps = [execution_step(e, n) for n, e in enumerate(executions, 1)]
                await apply_steps(conn, [s for s in steps if isinstance(s, Step)], grouped=grouped)
    finally:
        await pool.close()


async def _content(database_url: str, schema: str) -> dict[str, Any]:
    pool = await create_pool(database_url, max_size=1)
    try:
        return {
            table: await pool.fetchval(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {schema}.{table} t"
            )
            for table in TABLES
        } | {"statuses": sorted(r[0] for r in await pool.fetch(f"SELECT DISTINCT status FROM {schema}.executions"))}
    finally:
        await pool.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_grouped_batches_equal_one_by_one(database_url: str, seed: int) -> None:
    history = _history(seed)
    await _apply(database_url, "one_by_one", history, grouped=False)
    await _apply(database_url, "grouped", history, grouped=True)
    expected = await _content(database_url, "one_by_one")
    # The histories reach every status, so every kind of statement is compared.
    assert set(expected["statuses"]) >= {"success", "failure", "dead_letter", "skipped", "missed"}
    assert await _content(database_url, "grouped") == expected
