"""Deliveries that find an account's signing secrets stale together share one read of the bucket (real NATS)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from nats.js.kv import KeyValue

import shared.bus.signing_secrets as signing_secrets
from shared.bus.signing_secrets import SigningSecretStore, signing_bucket
from shared.settings import Settings
from tests.job_stores import job_store

pytestmark = pytest.mark.integration


class CountingBucket:
    """The real bucket, counting the reads and creates that reach NATS."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv, self.gets, self.creates = kv, 0, 0

    async def get(self, key: str) -> KeyValue.Entry:
        self.gets += 1
        return await self.kv.get(key)

    async def create(self, key: str, value: bytes) -> int:
        self.creates += 1
        return await self.kv.create(key, value)


async def test_a_burst_of_deliveries_reads_and_creates_an_accounts_secrets_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with job_store(settings) as (js, _):
        bucket = CountingBucket(await signing_bucket(js, settings))
        store = SigningSecretStore(bucket)  # type: ignore[arg-type]
        account, now = uuid.uuid4(), datetime.now(UTC)

        first = await asyncio.gather(*(store.get(account, now) for _ in range(64)))
        assert len({s.current for s in first}) == 1  # every caller got the one secret created
        assert (bucket.gets, bucket.creates) == (1, 1)

        monkeypatch.setattr(signing_secrets, "CACHE_SECONDS", 0.0)  # stale at once: the next burst reads again
        again = await asyncio.gather(*(store.get(account, now) for _ in range(64)))
        assert {s.current for s in again} == {first[0].current}
        assert (bucket.gets, bucket.creates) == (2, 1)

        # A caller cancelled while the read is under way does not cancel the others' read.
        waiting = [asyncio.ensure_future(store.get(account, now)) for _ in range(3)]
        await asyncio.sleep(0)
        waiting[0].cancel()
        rest = await asyncio.gather(*waiting[1:])
        assert {s.current for s in rest} == {first[0].current}
        assert bucket.gets == 3
