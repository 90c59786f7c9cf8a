"""Publishing what the ticker found due: the requests of due occurrences, the records of missed ones."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from nats.js import JetStreamContext
from opentelemetry.trace import Span

from services.ticker.schedule_index import DueOccurrence, MissedOccurrence
from shared.bus.executions import requested_message, result_message
from shared.bus.pipelined import Outgoing, publish_all
from shared.contracts.executions import (
    ExecutionMissed,
    missed_execution_id,
    occurrence_id,
    occurrence_requests,
)
from shared.contracts.jobs import JobState
from shared.contracts.subjects import Names
from shared.observability import tracing
from shared.observability.metrics import FIRE_LATENESS, OCCURRENCES_MISSED, OCCURRENCES_PUBLISHED
from shared.schedule.firing import jitter_of

log = logging.getLogger(__name__)


async def publish_due(
    js: JetStreamContext,
    names: Names,
    occurrences: list[DueOccurrence],
    clock: Callable[[], datetime],
    ahead: dict[UUID, tuple[datetime, list[UUID]]],
) -> None:
    """One ExecutionRequested per occurrence (per webhook), published as one pipelined batch. Those whose fire time
    is still ahead are recorded in `ahead` first, by job, so that a change of the job arriving meanwhile withdraws
    them."""
    now = clock()
    # Among occurrences due at the same moment, higher priority is published (and so dispatched) first.
    ordered = sorted(((occ, _whole(occ)) for occ in occurrences), key=lambda o: (o[0].nominal_time, -o[1].priority))
    outgoing: list[Outgoing] = []
    fire_times = []
    spans: list[Span | None] = []
    for occ, job in ordered:
        fire_at = occ.nominal_time + jitter_of(job, occ.nominal_time)
        fire_times.append(fire_at)
        events = occurrence_requests(
            job,
            job_version=occ.job_version,
            nominal_time=occ.nominal_time,
            occurred_at=now,
            next_run_at=occ.next_due,
            fire_at=fire_at,
        )
        if fire_at > now:  # recorded before publishing, so a change arriving meanwhile withdraws them
            latest, ids = ahead.get(job.id, (fire_at, []))
            ahead[job.id] = (max(latest, fire_at), [*ids, *(e.execution_id for e in events)])
        if tracing.enabled():  # each occurrence is the root of a trace its delivery continues
            what = {"job.id": str(job.id), "occurrence.id": events[0].occurrence_id}
            fired = tracing.start("fire occurrence", tracing.PRODUCER, attributes=what)
            spans.append(fired)
            carried = tracing.headers_of(fired)
            outgoing.extend(dataclasses.replace(requested_message(names, e), extra=carried) for e in events)
        else:
            outgoing.extend(requested_message(names, event) for event in events)
    try:
        await publish_all(js, outgoing)
    except BaseException as exc:
        for fired in spans:
            tracing.end(fired, exc)
        raise
    for fired in spans:  # each span covers its occurrence's publish (the batch's)
        tracing.end(fired)
    published = clock()
    for fire_at in fire_times:
        FIRE_LATENESS.observe(max(0.0, (published - fire_at).total_seconds()))
    OCCURRENCES_PUBLISHED.inc(len(outgoing))


def _whole(occurrence: DueOccurrence | MissedOccurrence) -> JobState:
    if occurrence.state is None:
        raise ValueError(f"an occurrence of job {occurrence.job.id} without its whole job: read it first")
    return occurrence.state


async def record_missed(js: JetStreamContext, names: Names, missed: list[MissedOccurrence], now: datetime) -> None:
    """One ExecutionMissed per occurrence the misfire policy did not fire: skipped, never silently dropped."""
    outgoing = []
    for m in missed:
        occurrence = occurrence_id(m.job.id, m.nominal_time)
        event = ExecutionMissed(
            execution_id=missed_execution_id(occurrence),
            occurrence_id=occurrence,
            job_id=m.job.id,
            account_id=m.job.account_id,
            occurred_at=now,
            nominal_time=m.nominal_time,
            job_name=_whole(m).name,
            policy=m.policy,
            reason=m.reason,
            more_missed=m.more_missed,
        )
        outgoing.append(result_message(names, "missed", event, str(event.execution_id)))
    await publish_all(js, outgoing)
    for m in missed:
        OCCURRENCES_MISSED.labels(m.policy).inc()
    if any(m.more_missed for m in missed):
        log.warning("more occurrences were missed than are recorded one by one; see ExecutionMissed.more_missed")
