"""A ticker that read a partition from the stream leaves a snapshot of its jobs; the next ticker to take the partition
reads the snapshot and the events after it, and indexes exactly what reading the stream would have.

Real NATS: a ticker indexes the store and writes its snapshots; jobs are then created, deleted and rescheduled; a
second ticker reads the snapshots and the events since, and a third meets one partition's snapshot unreadable and
reads that partition from the stream.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from services.ticker.index_snapshots import snapshot_store
from services.ticker.service import Ticker
from shared.contracts.jobs import JobDeleted, JobState, JobUpdated
from shared.contracts.schedules import CronSchedule
from shared.contracts.subjects import PARTITIONS, partition_of
from shared.observability.metrics import PARTITION_READS
from shared.settings import Settings
from tests.factories import job_created, job_following, job_state
from tests.job_stores import job_store
from tests.tickers import running_ticker
from tests.waiting import eventually

pytestmark = pytest.mark.integration

JOBS = 300
YEARLY = "0 0 1 1 *"
EVERY_MINUTE = CronSchedule(expression="* * * * *")


def reads(source: str) -> float:
    return float(PARTITION_READS.labels(source)._value.get())


async def snapshots_written(store: ObjectStore) -> bool | None:
    for partition in range(PARTITIONS):
        try:
            await store.get_info(f"partition.{partition}")
        except NotFoundError:
            return False
    return True


def indexed_exactly(ticker: Ticker, live: set[uuid.UUID]) -> bool:
    return len(ticker.index.jobs) == len(live) and set(ticker.index.jobs) == live


async def test_a_ticker_reads_the_snapshots_and_the_events_after_them(settings: Settings) -> None:
    async with job_store(settings) as (js, store):
        now = datetime.now(UTC)
        states: dict[uuid.UUID, JobState] = {}
        for _ in range(JOBS):
            state = job_state(YEARLY, at=now)
            await store.append(job_created(state), 0)
            states[state.id] = state
        live = set(states)
        snapshots = await snapshot_store(js, settings)

        async with running_ticker(settings.replaced(instance_id="ticker-1")) as first:
            await eventually(lambda: indexed_exactly(first, live), timeout=30, what="the first ticker indexing all")
            await eventually(lambda: snapshots_written(snapshots), timeout=30, what="every snapshot")  # type: ignore[arg-type]

        # After the snapshots: new jobs, deleted ones, rescheduled ones.
        old = list(states.values())
        for _ in range(20):
            state = job_state(YEARLY, at=now)
            await store.append(job_created(state), 0)
            live.add(state.id)
        for state in old[:5]:
            sequence = (await store.load(state.id)).sequence  # type: ignore[union-attr]
            await store.append(job_following(JobDeleted, state, 2), sequence)
            live.discard(state.id)
        rescheduled = old[5:10]
        for state in rescheduled:
            sequence = (await store.load(state.id)).sequence  # type: ignore[union-attr]
            event = job_following(JobUpdated, msgspec.structs.replace(state, schedule=EVERY_MINUTE), 2)
            await store.append(msgspec.structs.replace(event, changed=("schedule",), occurred_at=now), sequence)

        from_snapshot, from_stream = reads("snapshot"), reads("stream")
        async with running_ticker(settings.replaced(instance_id="ticker-2")) as second:
            await eventually(lambda: indexed_exactly(second, live), timeout=30, what="the second ticker indexing all")
            for state in rescheduled:  # the events after the snapshot are in: these fire within the minute
                job = second.index.jobs[state.id]
                assert job.schedule == EVERY_MINUTE and job.version == 2
                assert job.next_due is not None and (job.next_due - datetime.now(UTC)).total_seconds() <= 61
            assert reads("snapshot") - from_snapshot == PARTITIONS
            assert reads("stream") == from_stream

        # One partition's snapshot unreadable: that partition is read from the stream, the rest from snapshots.
        broken = partition_of(next(iter(live)))
        await snapshots.put(f"partition.{broken}", b"not a snapshot")
        from_snapshot, from_stream = reads("snapshot"), reads("stream")
        async with running_ticker(settings.replaced(instance_id="ticker-3")) as third:
            await eventually(lambda: indexed_exactly(third, live), timeout=30, what="the third ticker indexing all")
            assert (reads("snapshot") - from_snapshot, reads("stream") - from_stream) == (PARTITIONS - 1, 1)
