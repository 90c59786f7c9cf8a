"""Retry timers live in a KV bucket, not in a process: a ticker that was down when one came due fires it on start."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import nats
import pytest
from nats.js.errors import KeyNotFoundError

from services.ticker.service import open_ticker
from shared.bus.streams import ensure_streams, timers_bucket
from shared.contracts.codec import decode_execution_event, encode
from shared.contracts.executions import ExecutionRequested, occurrence_requests
from shared.contracts.subjects import Names
from shared.contracts.timers import RetryTimer
from shared.settings import Settings
from tests.factories import job_state
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def run_ticker(settings: Settings, stop: asyncio.Event) -> None:
    async with open_ticker(settings) as ticker:
        await ticker.run(stop)


async def test_a_timer_due_while_the_ticker_was_down_fires_once_after_restart(settings: Settings) -> None:
    names = Names(settings.namespace)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        timers = await timers_bucket(js, settings)
        job = job_state()
        now = datetime.now(UTC)
        first = occurrence_requests(job, job_version=1, nominal_time=now, occurred_at=now, next_run_at=None)[0]
        retry = first.next_attempt(now)
        due = now + timedelta(seconds=5)  # after the brief run below ends, on a loaded box too
        key = names.timer_key(job.id, retry.execution_id)
        await timers.put(key, encode(RetryTimer(due_at=due, request=retry)))

        # A ticker runs briefly and stops before the timer is due.
        stop = asyncio.Event()
        ticker = asyncio.create_task(run_ticker(settings, stop))
        stop.set()
        await asyncio.wait_for(ticker, timeout=20)
        assert datetime.now(UTC) < due, "the brief run lasted past the timer's due time: the test proves nothing"
        assert await timers.get(key), "the timer is still waiting"
        requested = f"{names.namespace}.executions.requested.{job.account_id}.{job.id}"
        sub = await js.subscribe(requested, ordered_consumer=True)
        await eventually(lambda: datetime.now(UTC) > due + timedelta(seconds=0.5), timeout=10, what="the due time")

        stop = asyncio.Event()
        ticker = asyncio.create_task(run_ticker(settings, stop))
        try:
            msg = await sub.next_msg(timeout=10)
            fired = decode_execution_event(msg.data)
            assert isinstance(fired, ExecutionRequested)
            assert (fired.execution_id, fired.attempt, fired.occurrence_id) == (
                retry.execution_id,
                2,
                first.occurrence_id,
            )

            async def deleted() -> bool:
                try:
                    await timers.get(key)
                except KeyNotFoundError:
                    return True
                return False

            await eventually(deleted, timeout=10, what="the fired timer to be deleted")
        finally:
            stop.set()
            await asyncio.wait_for(ticker, timeout=20)
        info = await js.stream_info(names.executions_stream)
        assert info.state.messages == 1, "fired exactly once"
        assert fired.execution_id != first.execution_id, "a new attempt is a new execution"
    finally:
        await nc.close()
