"""A ticker saves a partition's watermark each second only while the partition fires.

An idle partition's watermark is saved when the ticker takes it, when it hands it back or stops, and otherwise once it
is IDLE_WATERMARK_SAVE_SECONDS old: a new owner looking from the older watermark finds nothing due in between, since
nothing was published there. Real NATS, one ticker in this process, one job firing every second.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import nats.js.errors
import pytest
from nats.js.kv import KeyValue

import services.ticker.service as ticker_service
from shared.bus.leases import leases_bucket
from shared.bus.streams import ticker_bucket
from shared.contracts.subjects import PARTITIONS, Names, partition_of
from shared.contracts.ticker import watermark_key
from shared.settings import Settings
from tests.factories import job_created, job_state
from tests.job_stores import job_store
from tests.tickers import running_ticker
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def revisions(kv: KeyValue) -> dict[int, int]:
    """Each partition's watermark revision (0: never saved)."""
    found = {}
    for partition in range(PARTITIONS):
        try:
            found[partition] = (await kv.get(watermark_key(partition))).revision or 0
        except nats.js.errors.KeyNotFoundError:
            found[partition] = 0
    return found


async def watermark(kv: KeyValue, partition: int) -> datetime:
    entry = await kv.get(watermark_key(partition))
    assert entry.value is not None
    return msgspec.json.decode(entry.value, type=datetime)


async def test_only_a_firing_partition_saves_its_watermark_each_second_and_every_one_is_saved_on_stop(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with job_store(settings) as (js, store):
        job = job_state("* * * * * *", at=datetime.now(UTC))
        await store.append(job_created(job), 0)
        firing = partition_of(job.id)
        kv = await ticker_bucket(js, settings)
        async with running_ticker(settings) as ticker:

            async def all_saved_once() -> dict[int, int] | None:
                found = await revisions(kv)
                return found if ticker.owned and all(found.values()) else None

            first = await eventually(all_saved_once, timeout=30, what="every partition's watermark saved once")

            async def fired_three_more_times() -> dict[int, int] | None:
                found = await revisions(kv)
                ahead = (await kv.get(watermark_key(firing))).revision or 0
                return found if ahead >= first[firing] + 3 else None  # one save per second while it fires

            later = await eventually(fired_three_more_times, timeout=20, what="the firing partition saved 3 times")
            idle = [p for p in range(PARTITIONS) if p != firing]
            # Saved once more at most: a partition whose first save came just before its take-over look finished.
            assert all(later[p] <= first[p] + 1 for p in idle), {p: (first[p], later[p]) for p in idle}
            assert sum(later[p] - first[p] for p in idle) <= 1
            # An idle partition's watermark is saved again once it is old enough.
            monkeypatch.setattr(ticker_service, "IDLE_WATERMARK_SAVE_SECONDS", 2.0)

            async def idle_saved_again() -> bool:
                found = await revisions(kv)
                return all(found[p] > later[p] for p in idle)

            await eventually(idle_saved_again, timeout=20, what="idle partitions saved once their watermark aged")
            monkeypatch.setattr(ticker_service, "IDLE_WATERMARK_SAVE_SECONDS", 3600.0)
            aged = await revisions(kv)

            async def firing_saved_after() -> dict[int, int] | None:
                found = await revisions(kv)
                return found if found[firing] > aged[firing] + 1 else None

            before_stop = await eventually(firing_saved_after, timeout=20, what="a later watermark for the firing one")
            newest = await watermark(kv, firing)
            assert all([await watermark(kv, p) < newest for p in idle]), "the idle ones' watermarks lag behind"
        # Stopping saves the idle partitions too: every one is saved up to the same watermark.
        after_stop = await revisions(kv)
        assert all(after_stop[p] > before_stop[p] for p in idle), (before_stop, after_stop)
        assert len({await watermark(kv, p) for p in range(PARTITIONS)}) == 1, "all saved up to the same watermark"


async def test_a_ticker_stopping_while_its_state_cannot_be_saved_stops_cleanly_and_hands_its_partitions_back(
    settings: Settings,
) -> None:
    """Seen in a cluster fault test: the watermarks saved on the way out met a stream without a leader ("no response
    from stream") and the ticker ended with that error. Here the state bucket is gone before the stop."""
    names = Names(settings.namespace)
    async with job_store(settings) as (js, _):
        kv = await ticker_bucket(js, settings)
        leases = await leases_bucket(js, settings)
        async with running_ticker(settings) as ticker:

            async def saved() -> bool:
                return ticker.owned == frozenset(range(PARTITIONS)) and all((await revisions(kv)).values())

            await eventually(saved, timeout=30, what="every partition taken and its watermark saved")
            await js.delete_key_value(names.ticker_bucket)
            deleted_at = ticker.watermark
            assert deleted_at is not None
            # A look after the deletion: the watermarks to save on the way out are newer than the ones saved.
            await eventually(lambda: (ticker.watermark or deleted_at) > deleted_at, timeout=10, what="another look")
        # The context's exit awaited the ticker's run: it ended without raising. Its leases were handed back.
        with pytest.raises(nats.js.errors.NoKeysError):
            await leases.keys()
