"""The flow limiter on real NATS: two limiters (two dispatchers) racing for one key's places never let more than its
parallelism through at once, give places back, and keep keys of different accounts apart."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.bus.flow_control import FlowLimiter, Permit, Wait, flow_bucket
from shared.contracts.jobs import FlowControl
from shared.settings import Settings
from tests.job_stores import job_store

pytestmark = pytest.mark.integration


async def test_two_dispatchers_racing_for_a_key_never_exceed_its_parallelism(settings: Settings) -> None:
    async with job_store(settings) as (js, _):
        kv = await flow_bucket(js, settings)
        limiters = [FlowLimiter(kv, hold_for=30), FlowLimiter(kv, hold_for=30)]
        account, flow = uuid.uuid4(), FlowControl(key="billing", parallelism=4)
        in_flight, most, waits = 0, 0, 0

        async def deliver(n: int) -> None:
            nonlocal in_flight, most, waits
            limiter = limiters[n % 2]
            while isinstance(outcome := await limiter.acquire(account, flow, f"e{n}"), Wait):
                waits += 1
                await asyncio.sleep(0.01)  # the waiting consumer's delay, shortened
            assert isinstance(outcome, Permit)
            async with limiter.held(outcome, refresh_every=10):
                in_flight += 1
                most = max(most, in_flight)
                await asyncio.sleep(0.02)  # the request in flight
                in_flight -= 1

        await asyncio.gather(*(deliver(n) for n in range(40)))
        assert most == 4, f"at most the parallelism, and all of it used: {most}"
        assert waits > 0
        entry = await kv.get(FlowLimiter.key_of(account, flow))
        assert entry.value is not None and b'"holders":{}' in entry.value, "every place given back"

        # Another account's key of the same name has all its places.
        other = uuid.uuid4()
        permits = [await limiters[0].acquire(other, flow, f"o{n}") for n in range(4)]
        assert all(isinstance(p, Permit) for p in permits)
        assert isinstance(await limiters[1].acquire(other, flow, "o4"), Wait)
