"""Job chains: when an occurrence of a job ends (a success, or a dead letter), the jobs that run after it on that
outcome fire, each once per upstream occurrence.

The runner is a durable consumer of the results (`<ns>_chains`, shared by every projector replica) in the projector
process, the one with the read models: they say which jobs run after a job (an index on the link). Each downstream
job is then loaded from its event log, so its link, state and webhooks are its latest. Its occurrence has the upstream
occurrence's nominal time, so its id (`<job>_<time>`) and its executions' ids are the same however often the result
is seen again: a redelivery, another webhook of the upstream occurrence, or a cycle closed by two concurrent changes,
are all dropped as duplicates. A paused downstream job records the occurrence as missed, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.bus.executions import publish_requested, result_message
from shared.bus.job_store import JobEventStore, load_live
from shared.contracts.codec import decode_execution_event
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
from shared.observability.metrics import CHAIN_RUNS

log = logging.getLogger(__name__)

# The upstream answer's body a downstream body template may use, at most (characters).
UPSTREAM_BODY_KEPT = 4096
# At most this many jobs fire after one occurrence (the api refuses more links to one job).
MAX_FIRED_AFTER = 50
FETCH_BATCH = 32
FETCH_WAIT_SECONDS = 1.0
RETRY_SECONDS = 1.0

_DOWNSTREAM = """
SELECT id FROM jobs WHERE kind = 'after' AND schedule->>'job_id' = $1 ORDER BY number LIMIT $2
"""
_ERRORS = (nats.errors.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def fires_on(link: ChainOutcome, ended: str) -> bool:
    return link == "completion" or link == ended


class ChainRunner:
    def __init__(self, js: JetStreamContext, pool: asyncpg.Pool, store: JobEventStore, names: Names) -> None:
        self._js = js
        self._pool = pool
        self._store = store
        self._names = names

    async def run(self, stop: asyncio.Event) -> None:
        """Fire what each result leads to until `stop` is set."""
        sub = await self._js.pull_subscribe_bind(self._names.chain_consumer, stream=self._names.executions_stream)
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_SECONDS)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                except nats.errors.Error as exc:
                    log.warning("fetching results for chains failed, trying again: %r", exc)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                for msg in msgs:
                    await self._settle(msg)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _settle(self, msg: Msg) -> None:
        try:
            event = decode_execution_event(msg.data)
        except msgspec.ValidationError as exc:
            log.error("terminating an undecodable result on %s: %s", msg.subject, exc)
            await msg.term()
            return
        try:
            if isinstance(event, ExecutionSucceeded | ExecutionDeadLettered):
                await self._fire_after(event)
        except _ERRORS as exc:
            log.warning("could not fire the jobs after %s, trying again: %s", event.occurrence_id, exc)
            with contextlib.suppress(nats.errors.Error):
                await msg.nak(delay=RETRY_SECONDS)
            return
        with contextlib.suppress(nats.errors.Error):  # not acked: it comes back, and its repeats are dropped
            await msg.ack()

    async def _fire_after(self, event: ExecutionSucceeded | ExecutionDeadLettered) -> None:
        nominal = nominal_time_of(event.occurrence_id)
        if nominal is None:
            return
        rows = await self._pool.fetch(_DOWNSTREAM, str(event.job_id), MAX_FIRED_AFTER)
        if not rows:
            return
        if isinstance(event, ExecutionSucceeded):
            body = event.response_body[:UPSTREAM_BODY_KEPT] if event.response_body is not None else None
            ended = "success"
            upstream = Upstream(
                job_id=event.job_id,
                occurrence_id=event.occurrence_id,
                execution_id=event.execution_id,
                status="success",
                response_code=event.response_code,
                response_body=body,
            )
        else:
            ended = "failure"
            upstream = Upstream(
                job_id=event.job_id,
                occurrence_id=event.occurrence_id,
                execution_id=event.execution_id,
                status="dead_letter",
                error=event.reason,
            )
        now = datetime.now(UTC)
        for row in rows:
            loaded = await load_live(self._store, row["id"])
            if loaded is None:
                continue
            job, link = loaded.event.job, loaded.event.job.schedule
            if not isinstance(link, AfterSchedule) or link.job_id != event.job_id or not fires_on(link.on, ended):
                continue
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
        message = result_message(self._names, "missed", event, str(event.execution_id))
        await self._js.publish(message.subject, message.payload, headers={"Nats-Msg-Id": message.msg_id})
