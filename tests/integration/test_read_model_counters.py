"""The per-account counters behind /metrics follow every row change the projections make."""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec
import pytest

from services.projector.batched_writes import apply_steps
from services.projector.execution_projection import apply_execution_event, execution_step
from services.projector.job_projection import apply_job_event, job_step
from services.projector.migrate import _migrations, migrate
from shared.contracts.executions import (
    ExecutionFailed,
    ExecutionRequested,
    ExecutionStarted,
    ExecutionSucceeded,
    execution_id,
    occurrence_id,
)
from shared.contracts.jobs import JobDeleted, JobEvent, JobPaused, JobResumed, JobState
from shared.db.pool import DbConnection, create_pool
from tests.factories import NOW, executions_of, job_created, job_following, job_state

pytestmark = pytest.mark.integration


async def counters(conn: DbConnection, account: uuid.UUID) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
    jobs = await conn.fetchrow("SELECT total, enabled FROM job_stats WHERE account_id = $1", account)
    rows = await conn.fetch(
        "SELECT status, executions, duration_ms_sum FROM execution_stats WHERE account_id = $1 AND executions > 0",
        account,
    )
    return (jobs["total"], jobs["enabled"]) if jobs else (0, 0), {
        r["status"]: (r["executions"], r["duration_ms_sum"]) for r in rows
    }


async def test_job_counters_follow_create_pause_and_delete(conn: DbConnection) -> None:
    account = uuid.uuid4()
    a, b = job_state(account_id=account), job_state(account_id=account)
    await apply_job_event(conn, job_created(a), 1)
    await apply_job_event(conn, job_created(b), 2)
    assert (await counters(conn, account))[0] == (2, 2)
    paused = msgspec.structs.replace(a, enabled=False)
    await apply_job_event(conn, job_following(JobPaused, paused, 2), 3)
    assert (await counters(conn, account))[0] == (2, 1)
    await apply_job_event(conn, job_following(JobPaused, paused, 2), 3)  # a replayed event changes nothing
    assert (await counters(conn, account))[0] == (2, 1)
    await apply_job_event(conn, job_following(JobDeleted, paused, 3), 4)
    assert (await counters(conn, account))[0] == (1, 1)
    await apply_job_event(conn, job_following(JobDeleted, b, 2), 5)
    assert (await counters(conn, account))[0] == (0, 0)


async def test_execution_counters_move_with_status_and_ignore_replays(conn: DbConnection) -> None:
    job = job_state()
    account = job.account_id

    def ids(second: int) -> dict[str, object]:
        nominal = NOW + timedelta(seconds=second)
        occ = occurrence_id(job.id, nominal)
        return {
            "execution_id": execution_id(occ, None, 1),
            "occurrence_id": occ,
            "job_id": job.id,
            "account_id": account,
            "occurred_at": nominal,
            "nominal": nominal,
        }

    events = []
    for second, outcome in ((1, "success"), (2, "failure"), (3, "queued")):
        common = ids(second)
        nominal = common.pop("nominal")
        events.append(
            ExecutionRequested(
                **common,
                nominal_time=nominal,
                job_version=1,
                job_name="n",
                webhook=None,  # type: ignore[arg-type]
                next_run_at=None,
            )
        )
        if outcome == "queued":
            continue
        events.append(ExecutionStarted(**common, worker_id="w", started_at=nominal))  # type: ignore[arg-type]
        finished = {"worker_id": "w", "started_at": nominal, "finished_at": nominal, "duration_ms": 10 * second}
        if outcome == "success":
            events.append(ExecutionSucceeded(**common, **finished, response_code=200))  # type: ignore[arg-type]
        else:
            events.append(ExecutionFailed(**common, **finished, error="boom"))  # type: ignore[arg-type]
    for _ in range(2):  # every event twice: a replay must not double-count
        for sequence, event in enumerate(events, start=1):
            await apply_execution_event(conn, event, sequence)
    assert (await counters(conn, account))[1] == {"success": (1, 10), "failure": (1, 20), "queued": (1, 0)}
    assert await conn.fetchval("SELECT count(*) FROM executions WHERE account_id = $1", account) == 3


async def test_nul_characters_in_json_and_text_values_do_not_stop_a_projection(conn: DbConnection) -> None:
    job = job_state(metadata={"note": "nul\x00here", "k\x00": ["\x00"]})
    await apply_job_event(conn, job_created(job), 1)
    occ = occurrence_id(job.id, NOW)
    common = {
        "execution_id": execution_id(occ, None, 1),
        "occurrence_id": occ,
        "job_id": job.id,
        "account_id": job.account_id,
        "occurred_at": NOW,
    }
    requested = ExecutionRequested(
        **common,
        nominal_time=NOW,
        job_version=1,
        job_name="n",
        webhook=None,
        next_run_at=None,  # type: ignore[arg-type]
    )
    await apply_execution_event(conn, requested, 1)
    done = ExecutionSucceeded(
        **common,  # type: ignore[arg-type]
        worker_id="w",
        started_at=NOW,
        finished_at=NOW,
        duration_ms=1,
        response_body="body\x00",
        result={"out": "\x00"},
    )
    await apply_execution_event(conn, done, 2)
    assert await conn.fetchval("SELECT metadata FROM jobs WHERE id = $1", job.id) == {
        "note": "nul\ufffdhere",
        "k\ufffd": ["\ufffd"],
    }
    row = await conn.fetchrow("SELECT status, result, response_body FROM executions WHERE job_id = $1", job.id)
    assert dict(row) == {"status": "success", "result": {"out": "\ufffd"}, "response_body": "body\ufffd"}


async def test_the_per_statement_counters_take_over_from_the_row_trigger_on_an_existing_database(
    database_url: str,
) -> None:
    """A database migrated before 0008, with executions counted row by row, goes on counting the same after it."""
    pool = await create_pool(database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await _migrated_before(conn, 8)
            job = job_state()
            events = executions_of(job, 4)
            # Today's statements read the retention's horizon (0010) and write a backfill's id (0015): stand-ins let
            # them run on the old schema (0015 adds the column only where it is missing).
            await conn.execute("CREATE TABLE execution_retention (horizon timestamptz)")
            await conn.execute("ALTER TABLE executions ADD COLUMN backfill_id uuid")
            for sequence, event in enumerate(events[:5], start=1):  # counted by the row trigger
                await apply_execution_event(conn, event, sequence)
            await conn.execute("DROP TABLE execution_retention")
            assert (await migrate(conn))[0] == "0008_execution_counters_per_statement.sql"
            assert await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname = 'executions_counted'") == 0
            await apply_steps(conn, [s for n, e in enumerate(events[5:], 6) if (s := execution_step(e, n))])
            counted = await conn.fetch(
                "SELECT status, executions, duration_ms_sum, durations FROM execution_stats"
                " WHERE account_id = $1 AND executions > 0 ORDER BY status",
                job.account_id,
            )
            recount = await conn.fetch(
                "SELECT status, count(*), COALESCE(sum(duration_ms), 0), count(duration_ms) FROM executions"
                " WHERE account_id = $1 GROUP BY status ORDER BY status",
                job.account_id,
            )
            assert [tuple(r) for r in counted] == [tuple(r) for r in recount]
            assert [r[0] for r in counted] == ["failure", "success"]
    finally:
        await pool.close()


async def _migrated_before(conn: DbConnection, version: int) -> None:
    """The schema as a database migrated before `version` has it."""
    await conn.execute(
        "CREATE TABLE schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for number, name, sql in _migrations():
        if number < version:
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", number, name)


async def _job_counts_match_the_rows(conn: DbConnection) -> None:
    counted = await conn.fetch("SELECT account_id, total, enabled FROM job_stats WHERE total > 0 ORDER BY account_id")
    recount = await conn.fetch(
        "SELECT account_id, count(*), count(*) FILTER (WHERE enabled) FROM jobs GROUP BY account_id ORDER BY account_id"
    )
    assert [tuple(r) for r in counted] == [tuple(r) for r in recount]


def _job_changes(states: list[JobState]) -> list[JobEvent]:
    """Every third job paused, every fifth of those resumed, every seventh job deleted: one event each."""
    events: list[JobEvent] = []
    for n, state in enumerate(states):
        if n % 7 == 0:
            events.append(job_following(JobDeleted, state, 2))
        elif n % 3 == 0:
            paused = msgspec.structs.replace(state, enabled=False)
            events.append(job_following(JobPaused, paused, 2))
            if n % 5 == 0:
                events.append(job_following(JobResumed, state, 3))
    return events


async def test_job_counters_follow_batches_of_creates_pauses_resumes_and_deletes(conn: DbConnection) -> None:
    """A batch writes its jobs with one statement per kind of write: the counters move per statement, and match a
    count of the rows after every batch."""
    accounts = [uuid.uuid4(), uuid.uuid4()]
    states = [job_state(account_id=accounts[n % 2], enabled=n % 4 != 1) for n in range(60)]
    await apply_steps(conn, [job_step(job_created(s), n) for n, s in enumerate(states, 1)])
    await _job_counts_match_the_rows(conn)
    assert (await counters(conn, accounts[0]))[0] == (30, 30)
    changes = _job_changes(states)
    await apply_steps(conn, [job_step(e, n) for n, e in enumerate(changes, 100)])
    await _job_counts_match_the_rows(conn)
    assert await conn.fetchval("SELECT sum(total) FROM job_stats") == 60 - len(range(0, 60, 7))


async def test_the_per_statement_job_counters_take_over_from_the_row_trigger_on_an_existing_database(
    database_url: str,
) -> None:
    """A database migrated before 0009, with jobs counted row by row, goes on counting the same after it."""
    pool = await create_pool(database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await _migrated_before(conn, 9)
            # Today's statements write the jobs' exclusions (0011), callbacks (0012) and flow control (0013):
            # stand-ins let them run on the old schema.
            later = ("exclusions jsonb", "callback_url text", "failure_callback_url text", "flow_control jsonb")
            await conn.execute(f"ALTER TABLE jobs {', '.join(f'ADD COLUMN {c}' for c in later)}")
            states = [job_state(enabled=n % 2 == 0) for n in range(20)]
            for n, state in enumerate(states, 1):  # counted by the row trigger
                await apply_job_event(conn, job_created(state), n)
            await conn.execute(f"ALTER TABLE jobs {', '.join(f'DROP COLUMN {c.split()[0]}' for c in later)}")
            assert (await migrate(conn))[0] == "0009_job_counters_per_statement.sql"
            assert await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname = 'jobs_counted'") == 0
            await apply_steps(conn, [job_step(e, n) for n, e in enumerate(_job_changes(states), 100)])
            await _job_counts_match_the_rows(conn)
    finally:
        await pool.close()
