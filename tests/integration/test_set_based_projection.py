"""The projector's set-based, folded writes and per-statement counters against today's reference on real PostgreSQL.

The reference applies every event alone with the one-row statements and counts with the row-level trigger the
counters had before (migration 0002's); the candidate applies the same events in random batches as the projector
does (grouped, set-based, an execution's events in one batch folded into one insert) with the per-statement
triggers. Histories mix the new shape (requested, then the result), the old one (requested, started, result),
retries, dead letters, re-drives, skips, misses, runs on demand, several executions of one job, redelivered and
out-of-order events, and results in a later batch than their request. Both schemas must hold the same rows in every
table the executions stream writes, counters included, and the counters must equal a recount.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.projector_writes import row_trigger_sql
from services.projector.batched_writes import Many, Step, apply_steps, columns
from services.projector.execution_projection import (
    _ADVANCE_JOB,
    _ADVANCE_JOB_MANY,
    _RAN_ON_DEMAND,
    _RAN_ON_DEMAND_MANY,
    execution_step,
)
from services.projector.migrate import migrate
from shared.contracts.executions import (
    ExecutionDeadLettered,
    ExecutionEvent,
    ExecutionFailed,
    ExecutionMissed,
    ExecutionRequested,
    ExecutionRetryScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    envelope_of,
    missed_execution_id,
    occurrence_id,
    occurrence_requests,
)
from shared.contracts.jobs import JobState, TaskSpec, WebhookSpec
from shared.db.pool import DbConnection, create_pool
from tests.factories import NOW, job_state

pytestmark = pytest.mark.integration

TABLES = ("executions", "job_runs", "execution_stats")

# The counters as migration 0002 kept them: one trigger call per row version.
ROW_TRIGGER = row_trigger_sql()

RECOUNT = """
SELECT account_id, status, count(*) AS executions, COALESCE(sum(duration_ms), 0) AS duration_ms_sum,
    count(duration_ms) AS durations
FROM executions GROUP BY account_id, status
"""

HOOKS = tuple(
    WebhookSpec(id=uuid.uuid4(), url=f"https://example.com/{n}", created_at=NOW, updated_at=NOW) for n in "ab"
)
ACCOUNT = uuid.uuid4()
JOBS: tuple[JobState, ...] = (
    job_state("* * * * * *", account_id=ACCOUNT, webhooks=HOOKS[:1]),
    job_state("* * * * * *", account_id=ACCOUNT, webhooks=HOOKS),  # two executions per occurrence
    job_state("* * * * * *", task=TaskSpec(name="t")),  # another account, no webhook
)
SHAPES = ("new", "old", "queued", "started", "skipped", "retried", "dead", "redriven", "manual", "missed")


@st.composite
def lives(draw: st.DrawFn) -> list[ExecutionEvent]:
    """One occurrence's events in stream order, in one of the shapes the dispatcher and ticker publish."""
    job = JOBS[draw(st.integers(0, len(JOBS) - 1))]
    nominal = NOW + timedelta(seconds=draw(st.integers(0, 5)))
    shape = draw(st.sampled_from(SHAPES))
    if shape == "missed":
        occ = occurrence_id(job.id, nominal)
        return [
            ExecutionMissed(
                execution_id=missed_execution_id(occ), occurrence_id=occ, job_id=job.id, account_id=job.account_id,
                occurred_at=nominal, nominal_time=nominal, job_name=job.name, policy="skip", reason="down",
            )
        ]  # fmt: skip
    requests = occurrence_requests(
        job, job_version=draw(st.integers(1, 3)), nominal_time=nominal, occurred_at=nominal,
        next_run_at=nominal + timedelta(seconds=draw(st.integers(1, 9))), manual=shape == "manual",
    )  # fmt: skip
    events: list[ExecutionEvent] = []
    for request in requests:
        events.extend(_life(draw, request, shape))
    return events


def _result(draw: st.DrawFn, request: ExecutionRequested, *, ok: bool, started: bool) -> list[ExecutionEvent]:
    common = envelope_of(request)
    at = request.occurred_at + timedelta(milliseconds=draw(st.integers(0, 2000)))
    events: list[ExecutionEvent] = []
    if started:
        events.append(ExecutionStarted(**common, occurred_at=at, worker_id="w1", started_at=at))
    # A result's own start (the start event's, or the attempt's when it published none): may differ from the event's.
    begun = at + timedelta(milliseconds=draw(st.sampled_from([0, 7])))
    done: dict[str, Any] = {
        "occurred_at": begun,
        "worker_id": "w2",
        "started_at": begun,
        "finished_at": begun + timedelta(seconds=1),
    }
    duration = draw(st.integers(0, 5000))
    if ok:
        result = draw(st.sampled_from([None, {"n": 1, "s": "x\x00"}, [1, "two"], "text", 3]))
        events.append(ExecutionSucceeded(**common, **done, duration_ms=duration, response_code=200, result=result))
    else:
        timed_out = draw(st.booleans())
        events.append(
            ExecutionFailed(
                **common, **done, duration_ms=duration, error="boom\x00", timed_out=timed_out,
                response_code=None if timed_out else 500, response_body="no", traceback="tb",
            )
        )  # fmt: skip
    return events


def _life(draw: st.DrawFn, request: ExecutionRequested, shape: str) -> list[ExecutionEvent]:
    common = envelope_of(request)
    later = request.occurred_at + timedelta(seconds=3)
    if shape == "queued":
        return [request]
    if shape == "started":
        return [request, ExecutionStarted(**common, occurred_at=later, worker_id="w1", started_at=later)]
    if shape == "skipped":
        return [request, ExecutionSkipped(**common, occurred_at=later, reason="still running\x00")]
    if shape in ("new", "old", "manual"):
        return [request, *_result(draw, request, ok=draw(st.booleans()), started=shape == "old")]
    failed = [request, *_result(draw, request, ok=False, started=draw(st.booleans()))]
    if shape == "retried":
        nxt = request.next_attempt(later)
        retry = ExecutionRetryScheduled(
            **common, occurred_at=later, retry_at=later, delay_seconds=3, next_execution_id=nxt.execution_id,
            reason="500",
        )  # fmt: skip
        return [*failed, retry, nxt, *_result(draw, nxt, ok=True, started=draw(st.booleans()))]
    dead = [*failed, ExecutionDeadLettered(**common, occurred_at=later, reason="out of attempts")]
    if shape == "dead":
        return dead
    redrive = request.next_attempt(later, redrive=True)
    return [*dead, redrive, *_result(draw, redrive, ok=draw(st.booleans()), started=draw(st.booleans()))]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[ExecutionEvent], list[int]]:
    """(events in stream order, batch sizes): lifecycles interleaved, some events redelivered (at once or later)
    and some swapped with the next, cut into batches at random."""
    pending = draw(st.lists(lives(), min_size=1, max_size=6))
    events: list[ExecutionEvent] = []
    while pending:
        life = pending[draw(st.integers(0, len(pending) - 1))]
        events.append(life.pop(0))
        if not life:
            pending.remove(life)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(events) - 1))
        if draw(st.booleans()):
            events.insert(draw(st.integers(at, len(events))), events[at])  # redelivered
        elif at + 1 < len(events):
            events[at], events[at + 1] = events[at + 1], events[at]  # out of order
    sizes = draw(st.lists(st.integers(1, 12), min_size=1, max_size=len(events)))
    return events, sizes


async def _connect(database_url: str, schema: str, *, row_trigger: bool) -> Any:
    pool = await create_pool(database_url, max_size=1, schema=schema)
    async with pool.acquire() as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await migrate(conn)
        if row_trigger:
            await conn.execute(ROW_TRIGGER)
    return pool


@pytest.fixture
async def schemas(database_url: str) -> AsyncIterator[tuple[DbConnection, DbConnection]]:
    """(reference, candidate): connections to two migrated schemas of one database."""
    reference = await _connect(database_url, "reference", row_trigger=True)
    candidate = await _connect(database_url, "candidate", row_trigger=False)
    async with reference.acquire() as ref, candidate.acquire() as cand:
        yield ref, cand
    await reference.close()
    await candidate.close()


async def _content(conn: DbConnection) -> dict[str, list[str]]:
    return {table: [r[0] for r in await conn.fetch(f"SELECT t::text FROM {table} t ORDER BY 1")] for table in TABLES}


async def _recount_differs(conn: DbConnection) -> dict[Any, Any]:
    """The (account, status) figures where the counters and a recount of the rows differ (absent counts as 0)."""
    counted = {(r[0], r[1]): tuple(r[2:]) for r in await conn.fetch("SELECT * FROM execution_stats")}
    recounted = {(r[0], r[1]): tuple(r[2:]) for r in await conn.fetch(RECOUNT)}
    return {
        key: (counted.get(key), recounted.get(key))
        for key in counted.keys() | recounted.keys()
        if counted.get(key, (0, 0, 0)) != recounted.get(key, (0, 0, 0))
    }


def _steps(events: list[ExecutionEvent], first: int) -> list[Step]:
    steps = [execution_step(e, n) for n, e in enumerate(events, first)]
    return [s for s in steps if s is not None]


async def _compare(ref: DbConnection, cand: DbConnection, events: list[ExecutionEvent], sizes: list[int]) -> None:
    async with ref.transaction(), cand.transaction():
        await apply_steps(ref, _steps(events, 1), grouped=False)
        at = 0
        for size in [*sizes, len(events)]:  # the last batch takes what is left
            await apply_steps(cand, _steps(events[at : at + size], at + 1))
            at += size
        expected = await _content(ref)
        assert await _content(cand) == expected
        assert await _recount_differs(cand) == {}
        assert await _recount_differs(ref) == {}
        # Roll both back: every example starts from empty tables.
        raise _Undo


class _Undo(Exception):
    pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
async def test_batched_set_based_folded_writes_equal_one_by_one_with_the_row_trigger(
    schemas: tuple[DbConnection, DbConnection], history: tuple[list[ExecutionEvent], list[int]]
) -> None:
    ref, cand = schemas
    with pytest.raises(_Undo):
        await _compare(ref, cand, *history)


async def test_a_redelivered_request_and_result_do_not_overwrite_a_finished_row(
    schemas: tuple[DbConnection, DbConnection],
) -> None:
    """The folded insert meets a row that exists: the result applies with its guard, as one by one."""
    (request,) = occurrence_requests(JOBS[0], job_version=1, nominal_time=NOW, occurred_at=NOW, next_run_at=None)
    common = envelope_of(request)
    done: dict[str, Any] = {"occurred_at": NOW, "worker_id": "w", "started_at": NOW, "finished_at": NOW}
    ok = ExecutionSucceeded(**common, **done, duration_ms=10, response_code=200)
    failed = ExecutionFailed(**common, **done, duration_ms=20, error="late")
    started = ExecutionStarted(**common, occurred_at=NOW, worker_id="w", started_at=NOW)
    events: list[ExecutionEvent] = [request, ok, request, started, failed]
    ref, cand = schemas
    with pytest.raises(_Undo):
        await _compare(ref, cand, events, [2, 3])


async def test_a_fold_of_every_status_makes_the_counter_rows_the_row_trigger_made(
    schemas: tuple[DbConnection, DbConnection],
) -> None:
    """Requested, started, failed, dead-lettered in one batch: one row, but counter rows for queued, running and
    failure too (at 0), as the row-by-row writes left them."""
    (request,) = occurrence_requests(JOBS[0], job_version=1, nominal_time=NOW, occurred_at=NOW, next_run_at=None)
    common = envelope_of(request)
    done: dict[str, Any] = {"occurred_at": NOW, "worker_id": "w", "started_at": NOW, "finished_at": NOW}
    events: list[ExecutionEvent] = [
        request,
        ExecutionStarted(**common, occurred_at=NOW, worker_id="w", started_at=NOW),
        ExecutionFailed(**common, **done, duration_ms=20, error="e"),
        ExecutionDeadLettered(**common, occurred_at=NOW, reason="out of attempts"),
    ]
    ref, cand = schemas
    with pytest.raises(_Undo):
        await _counters_after_one_batch(cand, events)
    with pytest.raises(_Undo):
        await _compare(ref, cand, events, [4])


async def _counters_after_one_batch(cand: DbConnection, events: list[ExecutionEvent]) -> None:
    async with cand.transaction():
        await apply_steps(cand, _steps(events, 1))
        rows = await cand.fetch("SELECT status, executions, duration_ms_sum, durations FROM execution_stats")
        assert sorted(tuple(r) for r in rows) == [
            ("dead_letter", 1, 20, 1), ("failure", 0, 0, 0), ("queued", 0, 0, 0), ("running", 0, 0, 0),
        ]  # fmt: skip
        assert await cand.fetchval("SELECT count(*) FROM executions") == 1
        raise _Undo


TIMES = st.integers(0, 3).map(lambda s: NOW + timedelta(seconds=s))
RUN_JOBS = (uuid.UUID(int=1), uuid.UUID(int=2))
EXISTING = st.lists(
    st.tuples(st.sampled_from(RUN_JOBS), TIMES, st.none() | TIMES, st.integers(0, 3), st.none() | TIMES),
    max_size=2,
    unique_by=lambda r: r[0],
)
ADVANCES = st.lists(st.tuples(st.sampled_from(RUN_JOBS), TIMES, st.none() | TIMES, st.integers(1, 3)), min_size=1)
ON_DEMAND = st.lists(st.tuples(st.sampled_from(RUN_JOBS), TIMES), min_size=1)


async def _one_statement_equals_one_by_one(
    ref: DbConnection, cand: DbConnection, existing: list[Any], sql: str, many: Many, rows: list[Any]
) -> None:
    async with ref.transaction(), cand.transaction():
        for conn in (ref, cand):
            await conn.executemany(
                "INSERT INTO job_runs (job_id, last_run_at, next_run_at, job_version, last_scheduled_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                existing,
            )
        for row in rows:
            await ref.execute(sql, *row)
        await cand.execute(many.sql, *columns(many, rows))
        assert await _content(cand) == await _content(ref)
        raise _Undo


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(existing=EXISTING, rows=ADVANCES)
async def test_one_statement_of_a_jobs_advances_leaves_its_run_times_as_one_by_one(
    schemas: tuple[DbConnection, DbConnection], existing: list[Any], rows: list[Any]
) -> None:
    """Several executions of one job in one statement (which may touch a row once): reduced to the one that wins."""
    with pytest.raises(_Undo):
        await _one_statement_equals_one_by_one(*schemas, existing, _ADVANCE_JOB, _ADVANCE_JOB_MANY, rows)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(existing=EXISTING, rows=ON_DEMAND)
async def test_one_statement_of_runs_on_demand_leaves_the_last_run_as_one_by_one(
    schemas: tuple[DbConnection, DbConnection], existing: list[Any], rows: list[Any]
) -> None:
    with pytest.raises(_Undo):
        await _one_statement_equals_one_by_one(*schemas, existing, _RAN_ON_DEMAND, _RAN_ON_DEMAND_MANY, rows)
