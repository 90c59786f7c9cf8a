"""Publishing what the ticker found due: the requests of due occurrences, the records of missed ones."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from uuid import UUID

from nats.js import JetStreamContext

from services.ticker.schedule_index import DueOccurrence, MissedOccurrence
from shared.bus.executions import publish_requested, publish_result
from shared.contracts.executions import (
    ExecutionMissed,
    ExecutionRequested,
    missed_execution_id,
    occurrence_id,
    occurrence_requests,
)
from shared.contracts.subjects import Names
from shared.observability.metrics import FIRE_LATENESS, OCCURRENCES_MISSED, OCCURRENCES_PUBLISHED
from shared.schedule.firing import jitter_of

log = logging.getLogger(__name__)

PUBLISH_CONCURRENCY = 256


async def publish_due(
    js: JetStreamContext,
    names: Names,
    occurrences: list[DueOccurrence],
    clock: Callable[[], datetime],
    ahead: dict[UUID, tuple[datetime, list[UUID]]],
) -> None:
    """One ExecutionRequested per occurrence (per webhook). Those whose fire time is still ahead are recorded in
    `ahead` first, by job, so that a change of the job arriving meanwhile withdraws them."""
    limiter = asyncio.Semaphore(PUBLISH_CONCURRENCY)
    now = clock()

    async def one(event: ExecutionRequested) -> None:
        async with limiter:
            await publish_requested(js, names, event)

    # Among occurrences due at the same moment, higher priority is published (and so dispatched) first.
    ordered = sorted(occurrences, key=lambda occ: (occ.nominal_time, -occ.job.priority))
    tasks: list[Coroutine[object, object, None]] = []
    fire_times = []
    for occ in ordered:
        fire_at = occ.nominal_time + jitter_of(occ.job, occ.nominal_time)
        fire_times.append(fire_at)
        events = occurrence_requests(
            occ.job,
            job_version=occ.job_version,
            nominal_time=occ.nominal_time,
            occurred_at=now,
            next_run_at=occ.next_due,
            fire_at=fire_at,
        )
        if fire_at > now:  # recorded before publishing, so a change arriving meanwhile withdraws them
            latest, ids = ahead.get(occ.job.id, (fire_at, []))
            ahead[occ.job.id] = (max(latest, fire_at), [*ids, *(e.execution_id for e in events)])
        tasks.extend(one(event) for event in events)
    await asyncio.gather(*tasks)
    published = clock()
    for fire_at in fire_times:
        FIRE_LATENESS.observe(max(0.0, (published - fire_at).total_seconds()))
    OCCURRENCES_PUBLISHED.inc(len(tasks))


async def record_missed(js: JetStreamContext, names: Names, missed: list[MissedOccurrence], now: datetime) -> None:
    """One ExecutionMissed per occurrence the misfire policy did not fire: skipped, never silently dropped."""
    limiter = asyncio.Semaphore(PUBLISH_CONCURRENCY)

    async def one(m: MissedOccurrence) -> None:
        occurrence = occurrence_id(m.job.id, m.nominal_time)
        event = ExecutionMissed(
            execution_id=missed_execution_id(occurrence),
            occurrence_id=occurrence,
            job_id=m.job.id,
            account_id=m.job.account_id,
            occurred_at=now,
            nominal_time=m.nominal_time,
            job_name=m.job.name,
            policy=m.policy,
            reason=m.reason,
            more_missed=m.more_missed,
        )
        async with limiter:
            await publish_result(js, names, "missed", event, str(event.execution_id))

    await asyncio.gather(*(one(m) for m in missed))
    for m in missed:
        OCCURRENCES_MISSED.labels(m.policy).inc()
    if any(m.more_missed for m in missed):
        log.warning("more occurrences were missed than are recorded one by one; see ExecutionMissed.more_missed")
