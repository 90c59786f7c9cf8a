"""`scheduler replay` on a store of over 100,000 events: the rebuilt read models equal the live ones, by content hash.

A live projector runs throughout; the replay builds beside it, takes its leases, catches up and swaps.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import nats
import pytest

from bench.seed import execution_history
from services.projector.replay import PREVIOUS_SCHEMA, replay
from services.projector.stream_reader import stored_position
from shared.bus.executions import publish_requested, publish_result
from shared.bus.job_store import NatsJobEventStore
from shared.bus.streams import ensure_streams
from shared.contracts.executions import (
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionRetryScheduled,
    ExecutionStarted,
    ExecutionSucceeded,
    envelope_of,
    occurrence_requests,
)
from shared.contracts.jobs import JobState, WebhookSpec
from shared.contracts.subjects import Names
from shared.db.pool import create_pool
from shared.settings import Settings
from tests.e2e.harness import run_cli, running
from tests.factories import job_created, job_state
from tests.waiting import eventually

# On a loaded box (the other test worker starting whole systems) a replay can take minutes: the waits here allow
# 240-300 s, so the per-test timeout must too (the default 120 s cut one off mid-replay).
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(360)]

JOBS = 200
# Half of them version 1 of the execution events (requested, started, succeeded), half version 2 (requested,
# succeeded: a quick delivery has no ExecutionStarted), so a replay rebuilds old and new histories alike.
OCCURRENCES = 36_000
TABLES = ("jobs", "webhooks", "executions", "job_runs", "execution_stats", "job_stats", "projector_positions")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASES = {"SCHEDULER_LEASE_TTL_SECONDS": "2"}
REPORTED = (
    r"replayed (\d+) events at ([\d,]+) events/s \(([\d.]+) s in all, ([\d.]+) s of it waiting for the live projector"
)


async def content_hash(database_url: str, schema: str = "public", tables: tuple[str, ...] = TABLES) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: await conn.fetchval(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {schema}.{table} t"
            )
            for table in tables
        }
    finally:
        await conn.close()


async def fill(settings: Settings, jobs: int, occurrences: int, offset: int = 0) -> int:
    """Job events and `occurrences` executions of them, half in each event schema version (see OCCURRENCES), and a
    tenth as many again in the other shapes histories have (see `shapes`). Returns the events written."""
    names = Names(settings.namespace)
    nc = await nats.connect(settings.nats_url)
    written = 0
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        store = NatsJobEventStore(js, names)
        states = []
        for i in range(jobs):
            hook = WebhookSpec(id=uuid.uuid4(), url="https://example.com/h", created_at=T0, updated_at=T0)
            state = job_state("* * * * * *", at=T0, name=f"job {offset + i}", webhooks=(hook,))
            await store.append(job_created(state), 0)
            states.append(state)
            written += 1
    finally:
        await nc.close()
    written += await execution_history(settings, states, occurrences, offset, started_every=2)
    return written + await shapes(settings, states, occurrences // 10, offset)


async def shapes(settings: Settings, states: list[JobState], occurrences: int, offset: int) -> int:
    """Executions in turn of each shape: requested then the result (no start: the dispatcher publishes a start only
    for an attempt still running after a while), requested-started-failed-retried-succeeded, failed and
    dead-lettered, still queued, and started with no result yet. Returns the events written."""
    names = Names(settings.namespace)
    t0 = T0 + timedelta(days=10, seconds=offset)

    def events() -> Iterator[Coroutine[Any, Any, Any]]:
        for n in range(occurrences):
            nominal = t0 + timedelta(seconds=n)
            (request,) = occurrence_requests(
                states[n % len(states)], job_version=1, nominal_time=nominal, occurred_at=nominal, next_run_at=None
            )
            shape = n % 5
            for attempt in range(2):
                common, end = envelope_of(request), nominal + timedelta(milliseconds=20 + attempt)
                done: dict[str, Any] = {"occurred_at": end, "worker_id": "w", "started_at": nominal, "finished_at": end}
                yield publish_requested(js, names, request)
                if shape == 3:
                    break
                if shape in (1, 4):
                    started = ExecutionStarted(**common, occurred_at=nominal, worker_id="w", started_at=nominal)
                    yield publish_result(js, names, "started", started, f"{request.execution_id}:started")
                if shape == 4:
                    break
                if shape == 0 or (shape == 1 and attempt == 1):
                    ok = ExecutionSucceeded(**common, **done, duration_ms=20 + n % 7, response_code=200)
                    yield publish_result(js, names, "succeeded", ok, f"{request.execution_id}:result")
                    break
                failed = ExecutionFailed(**common, **done, duration_ms=20, error="500", response_code=500)
                yield publish_result(js, names, "failed", failed, f"{request.execution_id}:result")
                if shape == 2:
                    dead = ExecutionDeadLettered(**common, occurred_at=end, reason="out of attempts")
                    yield publish_result(js, names, "dead_lettered", dead, f"{request.execution_id}:dead")
                    break
                following = request.next_attempt(end)
                retry = ExecutionRetryScheduled(
                    **common, occurred_at=end, retry_at=end, delay_seconds=0, next_execution_id=following.execution_id,
                    reason="500",
                )  # fmt: skip
                yield publish_result(js, names, "retry_scheduled", retry, f"{request.execution_id}:retry")
                request = following

    nc = await nats.connect(settings.nats_url)
    written = 0
    try:
        js = nc.jetstream()
        window: list[Coroutine[Any, Any, Any]] = []
        for publish in events():
            window.append(publish)
            if len(window) >= 500:
                await asyncio.gather(*window)
                written, window = written + len(window), []
        await asyncio.gather(*window)
        return written + len(window)
    finally:
        await nc.close()


async def caught_up(settings: Settings) -> None:
    names = Names(settings.namespace)
    nc = await nats.connect(settings.nats_url)
    pool = await create_pool(settings.database_url)
    try:
        js = nc.jetstream()
        ends = {s: (await js.stream_info(s)).state.last_seq for s in (names.jobs_stream, names.executions_stream)}

        async def there() -> bool:
            try:
                return all([await stored_position(pool, s) == end for s, end in ends.items()])
            except asyncpg.UndefinedTableError:  # the projector has not applied its migrations yet
                return False

        await eventually(there, timeout=240, what="the live projector at the streams' ends")
    finally:
        await pool.close()
        await nc.close()


async def test_replay_of_over_100k_events_rebuilds_the_live_read_models_exactly(settings: Settings) -> None:
    """The CLI rebuilds a store of over 100,000 events beside the live projector and swaps the result in."""
    settings = settings.replaced(lease_ttl_seconds=2.0)
    events = await fill(settings, JOBS, OCCURRENCES)
    assert events >= 100_000
    async with running(settings, ["projector"]):
        await caught_up(settings)
        live = await content_hash(settings.database_url)
        replayed = await run_cli(settings, "replay", "--keep-previous", extra_env=LEASES, timeout=300)
        output = replayed.stdout
        applied = re.search(REPORTED, output)
        assert applied, output
        assert int(applied[1]) == events and int(applied[2].replace(",", "")) > 0
        assert await content_hash(settings.database_url) == live, "the rebuilt read models differ from the live ones"
        assert await content_hash(settings.database_url, PREVIOUS_SCHEMA) == live


async def test_events_arriving_during_a_replay_end_up_in_the_new_read_models(settings: Settings) -> None:
    """Events published while a replay runs are applied to the new tables: by the replay's catch-up before the swap,
    or by the live projector after it. A quiet replay afterwards finds nothing different."""
    settings = settings.replaced(lease_ttl_seconds=2.0)
    await fill(settings, 20, 3_000)
    async with running(settings, ["projector"]):
        await caught_up(settings)
        more = asyncio.create_task(fill(settings, 10, 2_000, offset=10**6))
        report = await replay(settings)
        await more
        assert report.events >= 9_000
        await caught_up(settings)
        after = await content_hash(settings.database_url)
    await replay(settings, keep_previous=True)
    assert await content_hash(settings.database_url) == after
    assert await content_hash(settings.database_url, PREVIOUS_SCHEMA) == after


async def test_replay_reports_the_rate_of_its_rebuild_not_of_its_wait_for_the_live_projector(
    settings: Settings,
) -> None:
    """A small store replays in a moment, but the hand-over waits a lease TTL: the rate must not count that wait
    (it printed "171 events in 10.1 s (17 events/s)")."""
    settings = settings.replaced(lease_ttl_seconds=2.0)
    events = await fill(settings, 5, 50)
    async with running(settings, ["projector"]):
        await caught_up(settings)
        report = await replay(settings)
        assert report.events == events
        assert report.waiting_seconds >= settings.lease_ttl_seconds
        assert report.applying_seconds + report.waiting_seconds <= report.seconds
        assert report.rate == pytest.approx(report.events / report.applying_seconds)

        output = (await run_cli(settings, "replay", extra_env=LEASES)).stdout
    reported = re.search(REPORTED, output)
    assert reported, output
    count, rate, total, waiting = int(reported[1]), int(reported[2].replace(",", "")), *map(float, reported.group(3, 4))
    assert count == events and waiting >= settings.lease_ttl_seconds
    # Printed figures are rounded (rate to 1, seconds to 0.1): the rate is at least events / (time not waiting).
    assert rate + 1 >= count / (total - waiting + 0.1), output
