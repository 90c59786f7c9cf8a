"""Job chains: when an occurrence of a job ends (a success, or a dead letter), the jobs that run after it on that
outcome fire, each once per upstream occurrence.

The runner works inside the live projection of the EXECUTIONS stream, which reads every result anyway: before a
batch's transaction commits (and its position moves), the results of jobs that have jobs after them (the read model
says which: an index on the link) fire those jobs. A failure rolls the batch back and it is done again; a crash
between the publishes and the commit does it again too. Replays fire nothing. Each downstream job is loaded from
its event log, so its link, state and webhooks are its latest. Its occurrence has the upstream
occurrence's nominal time, so its id (`<job>_<time>`) and its executions' ids are the same however often the result
is seen again: a redelivery, another webhook of the upstream occurrence, or a cycle closed by two concurrent changes,
are all dropped as duplicates. A paused downstream job records the occurrence as missed, saying why.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

from nats.js import JetStreamContext

from shared.bus.executions import publish_requested, publish_result
from shared.bus.job_store import JobEventStore, load_live
from shared.contracts.executions import (
    ExecutionDeadLettered,
    ExecutionMissed,
    ExecutionSucceeded,
    Upstream,
    missed_execution_id,
    nominal_time_of,
    occurrence_id,
    occurrence_requests,
)
from shared.contracts.jobs import JobState
from shared.contracts.schedules import AfterSchedule, ChainOutcome
from shared.contracts.subjects import Names
from shared.db.pool import DbConnection
from shared.observability.metrics import CHAIN_RUNS

# The upstream answer's body a downstream body template may use, at most (characters).
UPSTREAM_BODY_KEPT = 4096
# At most this many jobs fire after one occurrence (the api refuses more links to one job).
MAX_FIRED_AFTER = 50

# The jobs that have jobs after them (through the partial index on the link).
_LINKED = "SELECT DISTINCT schedule->>'job_id' AS id FROM jobs WHERE kind = 'after' AND schedule->>'job_id' = ANY($1)"
# A link fires once per upstream occurrence, whatever repeats its results (the row is the proof it fired).
_FIRED_ONCE = """
INSERT INTO chain_firings (job_id, upstream_occurrence_id, fired_at) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING job_id
"""
_DOWNSTREAM = """
SELECT id FROM jobs WHERE kind = 'after' AND schedule->>'job_id' = $1 ORDER BY number LIMIT $2
"""


def fires_on(link: ChainOutcome, ended: str) -> bool:
    return link == "completion" or link == ended


class ChainRunner:
    """Fires chained jobs from the results in a batch of the live execution projection, inside its transaction."""

    def __init__(self, js: JetStreamContext, store: JobEventStore, names: Names, fresh_for_seconds: float) -> None:
        self._js = js
        self._store = store
        self._names = names
        # Results older than this fire nothing: JetStream drops a repeated publish only within its duplicate window,
        # so a projection rebuilt from the streams (from position 0) must not fire the links of old results again.
        self._fresh_for = timedelta(seconds=fresh_for_seconds)

    async def before_commit(self, conn: DbConnection, events: list[object]) -> None:
        """Most results are of jobs nothing runs after: the batch's results are sorted against the jobs that have
        links (read once per batch that has results, in its transaction) and only those fire anything."""
        oldest = datetime.now(UTC) - self._fresh_for
        ended = [
            e for e in events if isinstance(e, ExecutionSucceeded | ExecutionDeadLettered) and e.occurred_at > oldest
        ]
        if not ended:
            return
        linked = {r["id"] for r in await conn.fetch(_LINKED, list({str(e.job_id) for e in ended}))}
        for event in ended:
            if str(event.job_id) in linked:
                await self._fire_after(conn, event)

    async def _fire_after(self, conn: DbConnection, event: ExecutionSucceeded | ExecutionDeadLettered) -> None:
        nominal = nominal_time_of(event.occurrence_id)
        if nominal is None:
            return
        rows = await conn.fetch(_DOWNSTREAM, str(event.job_id), MAX_FIRED_AFTER)
        if not rows:
            return
        succeeded = isinstance(event, ExecutionSucceeded)
        code, body, error = (
            (event.response_code, event.response_body, None)
            if isinstance(event, ExecutionSucceeded)
            else (None, None, event.reason)
        )
        ended = "success" if succeeded else "failure"
        upstream = Upstream(
            job_id=event.job_id,
            occurrence_id=event.occurrence_id,
            execution_id=event.execution_id,
            status="success" if succeeded else "dead_letter",
            response_code=code,
            response_body=body[:UPSTREAM_BODY_KEPT] if body is not None else None,
            error=error,
        )
        now = datetime.now(UTC)
        # The downstream jobs are read at once, not one round trip after another, while the transaction is open.
        found = await asyncio.gather(*(load_live(self._store, row["id"]) for row in rows))
        for loaded in found:
            if loaded is None:
                continue
            job, link = loaded.event.job, loaded.event.job.schedule
            if not isinstance(link, AfterSchedule) or link.job_id != event.job_id or not fires_on(link.on, ended):
                continue
            if await conn.fetchval(_FIRED_ONCE, job.id, event.occurrence_id, now) is None:
                continue  # fired already for this occurrence (its other webhook, a re-drive, a repeated batch)
            if not job.enabled:
                await self._missed(job, nominal, now, event.job_id)
                continue
            for request in occurrence_requests(
                job, job_version=loaded.event.version, nominal_time=nominal, occurred_at=now, next_run_at=None,
                upstream=upstream,
            ):  # fmt: skip
                await publish_requested(self._js, self._names, request)
            CHAIN_RUNS.inc()

    async def _missed(self, job: JobState, nominal: datetime, now: datetime, upstream: UUID) -> None:
        occurrence = occurrence_id(job.id, nominal)
        event = ExecutionMissed(
            execution_id=missed_execution_id(occurrence),
            occurrence_id=occurrence,
            job_id=job.id,
            account_id=job.account_id,
            occurred_at=now,
            nominal_time=nominal,
            job_name=job.name,
            policy="chain",
            reason=f"the job was paused when the occurrence of job {upstream} it runs after ended",
        )
        await publish_result(self._js, self._names, "missed", event, str(event.execution_id))
