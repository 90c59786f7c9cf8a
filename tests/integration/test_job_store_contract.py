"""One contract suite for both job event stores: in memory and JetStream."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest

from shared.bus.job_store import ConcurrencyError, InMemoryJobEventStore, JobEventStore, NatsJobEventStore
from shared.bus.streams import ensure_streams
from shared.contracts.jobs import JobCreated, JobUpdated
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.factories import NOW, job_created

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "nats"])
async def store(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[JobEventStore]:
    if request.param == "memory":
        yield InMemoryJobEventStore()
        return
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    await ensure_streams(js, settings)
    yield NatsJobEventStore(js, Names(settings.namespace))
    await nc.close()


def created() -> JobCreated:
    return job_created()


def updated(prev: JobCreated | JobUpdated, name: str) -> JobUpdated:
    return JobUpdated(
        event_id=uuid.uuid4(),
        job_id=prev.job_id,
        account_id=prev.account_id,
        version=prev.version + 1,
        occurred_at=NOW,
        job=msgspec.structs.replace(prev.job, name=name),
        next_run_at=None,
        changed=("name",),
    )


async def test_load_returns_latest_event_and_its_sequence(store: JobEventStore) -> None:
    first = created()
    assert await store.load(first.job_id) is None
    seq1 = await store.append(first, 0)
    second = updated(first, "renamed")
    seq2 = await store.append(second, seq1)
    loaded = await store.load(first.job_id)
    assert loaded is not None
    assert loaded.event == second and loaded.sequence == seq2 > seq1


async def test_stale_expected_sequence_is_a_conflict(store: JobEventStore) -> None:
    first = created()
    seq1 = await store.append(first, 0)
    await store.append(updated(first, "a"), seq1)
    with pytest.raises(ConcurrencyError):
        await store.append(updated(first, "b"), seq1)
    loaded = await store.load(first.job_id)
    assert loaded is not None and loaded.event.job.name == "a"


async def test_creating_an_existing_job_is_a_conflict(store: JobEventStore) -> None:
    first = created()
    await store.append(first, 0)
    with pytest.raises(ConcurrencyError):
        await store.append(msgspec.structs.replace(first, event_id=uuid.uuid4()), 0)


async def test_jobs_do_not_see_each_other(store: JobEventStore) -> None:
    a, b = created(), created()
    await store.append(a, 0)
    await store.append(b, 0)
    loaded = await store.load(a.job_id)
    assert loaded is not None and loaded.event == a
