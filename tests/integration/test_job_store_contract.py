"""One contract suite for both job event stores: in memory and JetStream."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest

from shared.bus.job_store import (
    ConcurrencyError,
    InMemoryJobEventStore,
    JobEventStore,
    Loaded,
    NatsJobEventStore,
    append_to_latest,
)
from shared.bus.streams import ensure_streams
from shared.contracts.jobs import JobCreated, JobEvent, JobUpdated
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


async def test_first_is_how_the_job_was_created_and_a_repeated_create_changes_nothing(store: JobEventStore) -> None:
    first = created()
    other = created()  # another job in between: its events must not be taken for this one's
    assert await store.first(first.job_id) is None
    seq1 = await store.append(first, 0)
    await store.append(other, 0)
    await store.append(updated(first, "renamed"), seq1)
    # A keyed create retried (the same event id) after the job exists: refused, or dropped as a duplicate.
    with contextlib.suppress(ConcurrencyError):
        await store.append(first, 0)
    loaded = await store.first(first.job_id)
    assert loaded is not None
    assert (loaded.event, loaded.sequence) == (first, seq1)
    latest = await store.load(first.job_id)
    assert latest is not None and latest.event.job.name == "renamed"


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


async def test_append_to_latest_decides_again_after_losing_a_race(store: JobEventStore) -> None:
    first = created()
    await store.append(first, 0)
    seen: list[str] = []

    def rename(loaded: Loaded) -> JobUpdated:
        seen.append(loaded.event.job.name)
        return updated(loaded.event, "mine")  # type: ignore[arg-type]

    # Someone else writes between this decision's load and its append, once.
    racer = store.append

    async def append_after_a_rival(event: JobEvent, expected: int) -> int:
        if len(seen) == 1:
            current = await store.load(first.job_id)
            assert current is not None
            await racer(updated(current.event, "theirs"), current.sequence)  # type: ignore[arg-type]
        return await racer(event, expected)

    store.append = append_after_a_rival  # type: ignore[method-assign]
    outcome = await append_to_latest(store, first.job_id, rename, attempts=3)
    assert outcome is not None and outcome.event is not None
    assert seen == [first.job.name, "theirs"]  # the second decision saw the rival's write
    loaded = await store.load(first.job_id)
    assert loaded is not None and loaded.event.job.name == "mine" and loaded.sequence == outcome.sequence


async def test_append_to_latest_changes_nothing_finds_nothing_or_gives_up(store: JobEventStore) -> None:
    first = created()
    sequence = await store.append(first, 0)
    unchanged = await append_to_latest(store, first.job_id, lambda loaded: None, attempts=3)
    assert unchanged is not None and (unchanged.event, unchanged.sequence) == (None, sequence)
    assert await append_to_latest(store, uuid.uuid4(), lambda loaded: None, attempts=3) is None

    # A rival that writes before every append: each attempt loses, and the third gives up.
    racer = store.append
    rivals = 0

    async def always_beaten(event: JobEvent, expected: int) -> int:
        nonlocal rivals
        current = await store.load(first.job_id)
        assert current is not None
        rivals += 1
        await racer(updated(current.event, f"rival {rivals}"), current.sequence)  # type: ignore[arg-type]
        return await racer(event, expected)

    store.append = always_beaten  # type: ignore[method-assign]
    with pytest.raises(ConcurrencyError, match="3 attempts"):
        await append_to_latest(store, first.job_id, lambda loaded: updated(loaded.event, "mine"), attempts=3)  # type: ignore[arg-type]
    loaded = await store.load(first.job_id)
    assert loaded is not None and loaded.event.job.name == "rival 3"


async def test_append_to_latest_decides_off_the_event_loop(store: JobEventStore) -> None:
    # A decision may compute a schedule's next run (tens of milliseconds for a rare RRULE): the loop keeps serving
    # other requests meanwhile, so the decision runs in a worker thread.
    first = created()
    await store.append(first, 0)
    loop_thread = threading.get_ident()
    deciders: list[int] = []

    def decide(loaded: Loaded) -> JobEvent | None:
        deciders.append(threading.get_ident())
        return updated(loaded.event, "renamed")  # type: ignore[arg-type]

    outcome = await append_to_latest(store, first.job_id, decide, attempts=3)
    assert outcome is not None and outcome.event is not None and outcome.event.job.name == "renamed"
    assert deciders and loop_thread not in deciders
