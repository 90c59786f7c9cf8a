"""Each ticker reads and holds only the partitions it leases.

A ticker reads a partition's jobs from the JOBS stream when it takes the partition's lease and forgets them when it
gives the lease up, so tickers sharing the partitions split the memory and the reading between them. Real NATS, two
tickers in this process, leases with a short TTL so they move within seconds.
"""

from __future__ import annotations

import uuid

import nats
import pytest

from services.ticker.service import Ticker
from shared.contracts.jobs import JobDeleted, JobState
from shared.contracts.subjects import PARTITIONS, Names, partition_of
from shared.settings import Settings
from tests.factories import job_created, job_following, job_state
from tests.job_stores import job_store
from tests.tickers import running_ticker
from tests.waiting import eventually

pytestmark = pytest.mark.integration

JOBS = 300
EVERY = frozenset(range(PARTITIONS))
YEARLY = "0 0 1 1 *"  # nothing fires while the test runs: only what each ticker holds is looked at


async def read_filters(js: nats.js.JetStreamContext, names: Names) -> list[str]:
    """The subject filters of the consumers reading the JOBS stream."""
    filters = []
    for info in await js.consumers_info(names.jobs_stream):
        filters += info.config.filter_subjects or [info.config.filter_subject or ">"]
    return filters


def holds_exactly_its_own(ticker: Ticker, jobs: set[uuid.UUID]) -> bool:
    """The ticker's index has every job of the partitions it holds, and no other."""
    return set(ticker.index.jobs) == {j for j in jobs if partition_of(j) in ticker.owned}


async def test_tickers_read_and_drop_partitions_as_their_leases_move(settings: Settings) -> None:
    settings = settings.replaced(lease_ttl_seconds=1.5)
    names = Names(settings.namespace)
    async with job_store(settings) as (js, store):
        states: dict[uuid.UUID, JobState] = {}
        for _ in range(JOBS):
            state = job_state(YEARLY)
            await store.append(job_created(state), 0)
            states[state.id] = state
        deleted = next(iter(states.values()))  # a deleted job is read as gone, not indexed
        sequence = (await store.load(deleted.id)).sequence  # type: ignore[union-attr]
        await store.append(job_following(JobDeleted, deleted, 2), sequence)
        live = set(states) - {deleted.id}

        async with running_ticker(settings.replaced(instance_id="ticker-1")) as one:
            await eventually(
                lambda: one.owned == EVERY and holds_exactly_its_own(one, live),
                timeout=30,
                what="the only ticker holding every partition and every live job",
            )
            async with running_ticker(settings.replaced(instance_id="ticker-2")) as two:

                async def split() -> bool:
                    return (
                        bool(one.owned)
                        and bool(two.owned)
                        and one.owned | two.owned == EVERY
                        and not one.owned & two.owned
                        and holds_exactly_its_own(one, live)
                        and holds_exactly_its_own(two, live)
                        # On the server: each partition read by one consumer, none reading the whole stream.
                        and sorted(await read_filters(js, names)) == sorted(names.partition_filter(p) for p in EVERY)
                    )

                await eventually(split, timeout=30, what="the partitions split, each ticker holding its own jobs")
                # A job created now is read by its partition's holder alone.
                late = job_state(YEARLY)
                await store.append(job_created(late), 0)
                live.add(late.id)
                holder, other = (one, two) if partition_of(late.id) in one.owned else (two, one)
                await eventually(lambda: late.id in holder.index.jobs, timeout=10, what="the new job indexed")
                assert late.id not in other.index.jobs
                assert len(one.index.jobs) + len(two.index.jobs) == len(live)
            # The second ticker stopped and handed its partitions back: the first reads them again.
            await eventually(
                lambda: one.owned == EVERY and holds_exactly_its_own(one, live),
                timeout=30,
                what="the first ticker holding every partition again",
            )


async def test_tickers_started_together_share_the_partitions_well_within_a_renewal_interval(
    settings: Settings,
) -> None:
    # A renewal interval (a third of the TTL) of 10 s: without the quicker steps of a ticker that has just started
    # or seen the sharing move, the first ticker would keep every partition until its next renewal, 10 s away.
    settings = settings.replaced(lease_ttl_seconds=30.0)
    async with running_ticker(settings.replaced(instance_id="ticker-1")) as one:
        await eventually(lambda: one.owned == EVERY, timeout=10, what="the first ticker holding every partition")
        async with (
            running_ticker(settings.replaced(instance_id="ticker-2")) as two,
            running_ticker(settings.replaced(instance_id="ticker-3")) as three,
        ):
            tickers = (one, two, three)

            def shared() -> bool:
                held = [t.owned for t in tickers]
                return (
                    frozenset().union(*held) == EVERY
                    and sum(len(h) for h in held) == PARTITIONS
                    and all(10 <= len(h) <= 11 for h in held)
                )

            await eventually(shared, timeout=5, what="three tickers holding 10 or 11 partitions each")
