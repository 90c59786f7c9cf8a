"""The projector applies events to Postgres with its stream position in the same transaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec
import nats
import pytest

from services.projector.service import open_projector
from shared.bus.job_store import NatsJobEventStore
from shared.bus.streams import ensure_streams
from shared.contracts.codec import encode
from shared.contracts.executions import ExecutionRequested, ExecutionSucceeded, execution_id, occurrence_id
from shared.contracts.jobs import JobDeleted, WebhookAdded, WebhookSpec
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.factories import NOW, job_created, job_state
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def run_projector(settings: Settings) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """A projector, migrations applied, running until the event is set (the task ends with its connections closed)."""
    stop = asyncio.Event()
    opened = asyncio.Event()

    async def run() -> None:
        async with open_projector(settings) as projector:
            opened.set()
            await projector.run(stop)

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(opened.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # it failed to open: say why
    return stop, task


async def test_job_and_execution_events_become_rows(settings: Settings) -> None:
    names = Names(settings.namespace)
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    await ensure_streams(js, settings)
    store = NatsJobEventStore(js, names)
    s = job_state("0 2 * * *", type=7)
    first = job_created(s, next_run_at=datetime(2026, 1, 1, 2, tzinfo=UTC))
    seq = await store.append(first, 0)
    hook = WebhookSpec(id=uuid.uuid4(), url="http://127.0.0.1:1/x", created_at=NOW, updated_at=NOW)
    added = WebhookAdded(
        event_id=uuid.uuid4(),
        job_id=s.id,
        account_id=s.account_id,
        version=2,
        occurred_at=NOW,
        job=msgspec.structs.replace(s, webhooks=(hook,)),
        next_run_at=first.next_run_at,
        webhook_id=hook.id,
    )
    await store.append(added, seq)
    nominal = datetime(2026, 1, 1, 2, tzinfo=UTC)
    occ = occurrence_id(s.id, nominal)
    exec_id = execution_id(occ, hook.id, 1)
    common = {"execution_id": exec_id, "occurrence_id": occ, "job_id": s.id, "account_id": s.account_id}
    requested = ExecutionRequested(
        **common,
        occurred_at=nominal,
        nominal_time=nominal,
        job_version=2,
        job_name="n",
        webhook=hook,
        next_run_at=datetime(2026, 1, 2, 2, tzinfo=UTC),
    )
    done = ExecutionSucceeded(
        **common,
        occurred_at=nominal,
        worker_id="w",
        started_at=nominal,
        finished_at=nominal,
        duration_ms=5,
        response_code=204,
    )
    for kind, event in (("requested", requested), ("requested", requested), ("succeeded", done)):
        await js.publish(names.execution_subject(kind, s.account_id, s.id), encode(event))

    stop, task = await run_projector(settings)
    db = await asyncpg.connect(settings.database_url)
    try:
        row = await eventually(
            lambda: db.fetchrow("SELECT * FROM executions WHERE id = $1 AND status = 'success'", exec_id),
            what="execution row",
        )
        assert row["response_code"] == 204 and row["webhook_id"] == hook.id
        assert await db.fetchval("SELECT count(*) FROM executions") == 1  # a repeated publish is one row
        # The two streams are projected by separate readers: the job's row may come after the execution's.
        job = await eventually(
            lambda: db.fetchrow("SELECT * FROM jobs WHERE id = $1 AND version = 2", s.id), what="the job's row"
        )
        assert job["type"] == 7 and job["version"] == 2
        assert job["next_run_at"] == first.next_run_at
        runs = await db.fetchrow("SELECT * FROM job_runs WHERE job_id = $1", s.id)
        assert runs["last_run_at"] == nominal and runs["next_run_at"] == requested.next_run_at
        assert await db.fetchval("SELECT url FROM webhooks WHERE job_id = $1", s.id) == hook.url
        positions = dict(await db.fetch("SELECT stream, position FROM projector_positions"))
        assert positions[names.jobs_stream] == 2 and positions[names.executions_stream] == 3

        stop.set()
        await task
        # Restarted, it continues from its position: a deletion applies, nothing is applied twice.
        deleted = JobDeleted(
            event_id=uuid.uuid4(),
            job_id=s.id,
            account_id=s.account_id,
            version=3,
            occurred_at=NOW,
            job=added.job,
            next_run_at=None,
        )
        loaded = await store.load(s.id)
        assert loaded is not None
        await store.append(deleted, loaded.sequence)
        stop, task = await run_projector(settings)
        await eventually(
            lambda: db.fetchval("SELECT count(*) = 0 FROM jobs WHERE id = $1", s.id), what="job row deleted"
        )
        assert await db.fetchval("SELECT count(*) FROM webhooks") == 0
        assert await db.fetchval("SELECT count(*) FROM job_runs") == 0
        assert await db.fetchval("SELECT count(*) FROM executions") == 1
    finally:
        stop.set()
        await task
        await db.close()
        await nc.close()
