"""The ticker's index holds jobs' timing; the whole job is read from the JOBS stream shortly before it fires.

Real NATS. `read_jobs` answers for more jobs than one batched get carries, at each job's latest version; a ticker
that holds no whole job at all (its index told to keep none and read none ahead) publishes every occurrence with
the job as it is when the occurrence is published: a rename reaches the next occurrences. (What a job changed
between the pop and the read publishes: tests/unit/test_job_states.py; withdrawn inside the lead:
tests/e2e/test_fire_lead.py.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from jetstreamext import InvalidResponseError
from nats.aio.msg import Msg

from services.ticker import job_states
from services.ticker.job_states import READ_BATCH, read_jobs
from services.ticker.schedule_index import IndexedJob, ScheduleIndex
from services.ticker.service import open_ticker
from shared.contracts.codec import decode_execution_event
from shared.contracts.executions import ExecutionRequested
from shared.contracts.jobs import JobDeleted, JobUpdated
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.factories import NOW, job_created, job_following, job_state, timing_of
from tests.job_stores import job_store
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def test_read_jobs_answers_for_more_jobs_than_one_batch_at_their_latest_versions(settings: Settings) -> None:
    names = Names(settings.namespace)
    async with job_store(settings) as (js, store):
        account = uuid.uuid4()
        states = [job_state(account_id=account, name=f"job {i}") for i in range(READ_BATCH + 200)]
        index = ScheduleIndex()
        for state in states:
            created = job_created(state)
            await store.append(created, 0)
            index.apply(timing_of(created), NOW)
        renamed = {s.id: msgspec.structs.replace(s, name="renamed") for s in states[:: READ_BATCH // 10]}
        for state in renamed.values():
            event = job_following(JobUpdated, state, 2)
            await store.append(event, (await store.load(state.id)).sequence)  # type: ignore[union-attr]
            index.apply(timing_of(event), NOW)
        gone = states[1]
        await store.append(job_following(JobDeleted, gone, 2), (await store.load(gone.id)).sequence)  # type: ignore[union-attr]

        jobs: list[IndexedJob] = list(index.jobs.values())
        latest = await read_jobs(js, names, jobs)

        assert set(latest) == {s.id for s in states}
        assert isinstance(latest[gone.id], JobDeleted)
        for state in states:
            if state.id in renamed:
                assert (latest[state.id].version, latest[state.id].job.name) == (2, "renamed")
            elif state.id != gone.id:
                assert latest[state.id].version == 1
                assert latest[state.id].job == state


async def test_a_ticker_holding_no_whole_job_fires_each_with_the_job_as_it_is(settings: Settings) -> None:
    settings = settings.replaced(fire_lead_seconds=1.5)
    names = Names(settings.namespace)
    seen: list[ExecutionRequested] = []
    async with job_store(settings) as (js, store):
        state = job_state("* * * * * *", name="first", at=datetime.now(UTC))  # created now: fires from now on
        await store.append(job_created(state), 0)

        async def collect(msg: Msg) -> None:
            event = decode_execution_event(msg.data)
            assert isinstance(event, ExecutionRequested)
            seen.append(event)

        subject = names.execution_subject("requested", state.account_id, state.id)
        sub = await js.subscribe(subject, cb=collect, ordered_consumer=True)
        stop = asyncio.Event()
        async with open_ticker(settings) as ticker:
            ticker.index.kept_for = ticker.index.fetched_ahead = timedelta(0)  # every job read when it fires
            run = asyncio.create_task(ticker.run(stop))
            try:
                await eventually(lambda: len(seen) >= 2, what="two occurrences published")
                assert ticker.index.jobs[state.id].state is None  # the index holds none: each was read
                assert all((e.job_name, e.job_version) == ("first", 1) for e in seen)

                second = msgspec.structs.replace(state, name="second")
                sequence = (await store.load(state.id)).sequence  # type: ignore[union-attr]
                await store.append(job_following(JobUpdated, second, 2), sequence)
                renamed = await eventually(
                    lambda: next((e for e in seen if e.job_name == "second"), None), what="the rename reaching one"
                )
                assert renamed.job_version == 2
                assert all(e.job_name == "second" for e in seen if e.nominal_time > renamed.nominal_time)

            finally:
                stop.set()
                await asyncio.wait_for(run, 30)
        await sub.unsubscribe()


async def test_a_batched_read_the_server_refuses_is_read_job_by_job(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that answers the batched get with an error (or one too old to have it) still gives every job."""

    def refused(*args: object, **kwargs: object) -> AsyncIterator[object]:
        raise InvalidResponseError("Server returned status 408: Bad Request")

    monkeypatch.setattr(job_states, "get_last_msgs_for", refused)
    names = Names(settings.namespace)
    async with job_store(settings) as (js, store):
        index = ScheduleIndex()
        states = [job_state() for _ in range(5)]
        for state in states:
            created = job_created(state)
            await store.append(created, 0)
            index.apply(timing_of(created), NOW)
        latest = await read_jobs(js, names, list(index.jobs.values()))
        assert {job_id: event.job for job_id, event in latest.items()} == {s.id: s for s in states}
