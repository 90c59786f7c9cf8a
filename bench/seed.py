"""Loading a store fast: job and execution events published straight to JetStream, as the api and services would.

Creating a million jobs through the REST API would take longer than the benchmark itself; the events are the
source of truth, so the benchmarks write them directly (with the same subjects, message ids and expected
sequences the api uses) and let the projector and ticker pick them up as they would any other.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import nats

from shared.bus.executions import publish_requested, publish_result
from shared.bus.job_store import NatsJobEventStore
from shared.bus.streams import ensure_streams
from shared.contracts.execution_envelope import EXECUTION_SCHEMA_VERSION
from shared.contracts.executions import (
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionSucceeded,
    envelope_of,
    occurrence_requests,
)
from shared.contracts.jobs import JobCreated, JobState, WebhookSpec
from shared.contracts.schedules import CronSchedule
from shared.contracts.subjects import Names
from shared.schedule.firing import next_fire
from shared.settings import Settings

IN_FLIGHT = 2000


def job(
    account: uuid.UUID, name: str, expression: str, url: str, at: datetime, start_at: datetime | None = None
) -> JobState:
    hook = WebhookSpec(id=uuid.uuid4(), url=url, created_at=at, updated_at=at)
    return JobState(
        id=uuid.uuid4(), account_id=account, name=name, type=1, schedule=CronSchedule(expression=expression),
        webhooks=(hook,), created_at=at, updated_at=at, start_at=start_at,
    )  # fmt: skip


async def _in_windows(coroutines: Iterable[Coroutine[Any, Any, Any]], progress: str = "") -> int:
    """Run with up to IN_FLIGHT awaiting their acks at once (about 20,000 publishes/s on 2 cores)."""
    done = 0
    window: list[Coroutine[Any, Any, Any]] = []
    for coroutine in coroutines:
        window.append(coroutine)
        if len(window) >= IN_FLIGHT:
            await asyncio.gather(*window)
            done += len(window)
            window.clear()
            if progress and done % 100_000 < IN_FLIGHT:
                print(f"  {progress}: {done:,}", flush=True)
    await asyncio.gather(*window)
    return done + len(window)


async def create_jobs(settings: Settings, states: Iterable[JobState]) -> int:
    """Publish one JobCreated per state; returns how many."""
    names = Names(settings.namespace)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        store = NatsJobEventStore(js, names)
        now = datetime.now(UTC)

        following: dict[str, datetime | None] = {}  # by expression: a million croniter walks would take a minute

        def events() -> Iterator[Coroutine[Any, Any, int]]:
            for state in states:
                assert isinstance(state.schedule, CronSchedule)
                key = state.schedule.expression
                if key not in following:
                    following[key] = next_fire(state, now)
                event = JobCreated(
                    event_id=uuid.uuid4(), job_id=state.id, account_id=state.account_id, version=1, occurred_at=now,
                    job=state, next_run_at=following[key],
                )  # fmt: skip
                yield store.append(event, 0)

        return await _in_windows(events(), "jobs")
    finally:
        await nc.close()


async def execution_history(
    settings: Settings,
    states: list[JobState],
    occurrences: int,
    offset: int = 0,
    *,
    start: datetime | None = None,
    spacing: timedelta = timedelta(seconds=1),
    fail_every: int = 0,
    next_runs: bool = False,
    started_every: int = 1,
) -> int:
    """`occurrences` past executions of `states` in turn, each requested, started and succeeded, `spacing` apart
    from `start` (2026-01-01) plus `offset` seconds; with `fail_every`, every such occurrence fails instead (HTTP
    500) and is dead-lettered; with `next_runs`, each request carries the job's next run after it (as the ticker's
    do; it costs a schedule computation per occurrence). A first attempt starts 0 to 36 ms after its nominal time.
    `started_every`: only every such occurrence is written as history of event schema version 1 (its events say
    version 1, and it has an ExecutionStarted); the others as version 2 writes a quick delivery (no
    ExecutionStarted). Returns the events written."""
    names = Names(settings.namespace)
    nc = await nats.connect(settings.nats_url)
    t0 = start or datetime(2026, 1, 1, tzinfo=UTC)
    try:
        js = nc.jetstream()

        def events() -> Iterator[Coroutine[Any, Any, Any]]:
            for n in range(occurrences):
                state = states[n % len(states)]
                nominal = t0 + timedelta(seconds=offset) + n * spacing
                following = next_fire(state, nominal) if next_runs else None
                (request,) = occurrence_requests(
                    state, job_version=1, nominal_time=nominal, occurred_at=nominal, next_run_at=following
                )
                common = envelope_of(request)
                began = nominal + timedelta(milliseconds=n % 37)
                done = began + timedelta(milliseconds=20)
                version = 1 if n % started_every == 0 else EXECUTION_SCHEMA_VERSION
                if version == 1:
                    request = msgspec.structs.replace(request, schema_version=1)
                yield publish_requested(js, names, request)
                if version == 1:
                    started = ExecutionStarted(
                        **common, occurred_at=began, worker_id="w", started_at=began, schema_version=1
                    )
                    yield publish_result(js, names, "started", started, f"{request.execution_id}:started")
                if fail_every and n % fail_every == 0:
                    failed = ExecutionFailed(
                        **common, occurred_at=done, worker_id="w", started_at=began, finished_at=done,
                        duration_ms=20, error="receiver answered HTTP 500", response_code=500, response_body="boom",
                        schema_version=version,
                    )  # fmt: skip
                    dead = ExecutionDeadLettered(
                        **common, occurred_at=done, reason=failed.error, schema_version=version
                    )
                    yield publish_result(js, names, "failed", failed, f"{request.execution_id}:result")
                    yield publish_result(js, names, "dead_lettered", dead, f"{request.execution_id}:dead")
                    continue
                succeeded = ExecutionSucceeded(
                    **common, occurred_at=done, worker_id="w", started_at=began, finished_at=done, duration_ms=20,
                    response_code=200, response_body="ok", schema_version=version,
                )  # fmt: skip
                yield publish_result(js, names, "succeeded", succeeded, f"{request.execution_id}:result")

        return await _in_windows(events(), "execution events")
    finally:
        await nc.close()
