"""Backfills' runner: walks each running backfill's range in order, at its rate, and requests the occurrences' targets
that have not succeeded (services/projector/backfill_plan.py says which).

It runs in the projector, where the read model is, under a lease of its own, so one runner serves every backfill and
another projector takes over when it dies. A runner that takes over first waits for the read model to hold every
execution published so far (so an attempt the dead runner requested is seen, with its backfill id), then resumes each
backfill from its last progress; the occurrences walked since are checked again and what the backfill already
requested is not requested twice (and a repeat publish within the duplicate window is dropped anyway).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
from nats.js import JetStreamContext

from services.projector.backfill_plan import Recorded, counted, plan
from shared.bus.executions import publish_requested, publish_result
from shared.bus.job_store import JobEventStore, load_live
from shared.contracts.backfills import (
    BackfillCancelled,
    BackfillCompleted,
    BackfillCounts,
    BackfillProgressed,
    backfill_message_id,
)
from shared.contracts.executions import ExecutionRequested, has_target, occurrence_id, occurrence_requests
from shared.contracts.schedules import AfterSchedule
from shared.contracts.subjects import Names
from shared.domain.retention import Retention
from shared.observability.metrics import BACKFILL_REQUESTS
from shared.runtime.periodic import pause
from shared.schedule.firing import next_fire

log = logging.getLogger(__name__)

# Progress is reported every this many occurrences, and at least this often.
PROGRESS_EVERY = 100
PROGRESS_EVERY_SECONDS = 5.0
# How often the running backfills are read again (new ones start, cancelled ones stop), and a paused job looked at.
LOOK_EVERY_SECONDS = 1.0
_TICK = timedelta(microseconds=1)

_RUNNING = """
SELECT id, job_id, account_id, range_start, range_end, per_second, through, done, requested, already_succeeded,
    in_flight
FROM backfills WHERE status = 'running' ORDER BY created_at, id
"""
_RECORDED = """
SELECT webhook_id, attempt, status, backfill_id FROM executions WHERE occurrence_id = $1 AND nominal_time = $2
"""
_POSITION = "SELECT position FROM projector_positions WHERE stream = $1"
# Before each occurrence: whether the backfill still runs (a cancel stops it at once) and the stored horizon.
_LOOK = "SELECT status, (SELECT horizon FROM execution_retention) AS horizon FROM backfills WHERE id = $1"


class BackfillRunner:
    def __init__(
        self, js: JetStreamContext, pool: asyncpg.Pool, store: JobEventStore, names: Names, retention: Retention
    ) -> None:
        self._js = js
        self._pool = pool
        self._store = store
        self._names = names
        self._retention = retention

    async def run(self, halt: asyncio.Event) -> None:
        """Run every backfill until `halt` (the lease was lost, or the projector stops)."""
        await self._caught_up(halt)
        running: dict[UUID, asyncio.Task[None]] = {}
        ended: set[UUID] = set()  # by this runner: their rows say so once the projection has their last event
        try:
            while not halt.is_set():
                rows = {row["id"]: row for row in await self._pool.fetch(_RUNNING)}
                failed = False
                for backfill_id, task in list(running.items()):
                    if task.done() or backfill_id not in rows:
                        task.cancel()  # cancelled (or ended): it requests nothing more
                        del running[backfill_id]
                        if task.done() and not task.cancelled() and task.exception() is None:
                            ended.add(backfill_id)
                        elif task.done() and not task.cancelled():
                            log.error("backfill %s failed, retrying: %s", backfill_id, task.exception())
                            failed = True
                if failed:
                    # It resumes from its last progress: what it requested since is in the read model first.
                    await self._caught_up(halt)
                    rows = {row["id"]: row for row in await self._pool.fetch(_RUNNING)}
                for backfill_id, row in rows.items():
                    if backfill_id not in running and backfill_id not in ended:
                        running[backfill_id] = asyncio.create_task(self._walk(row))
                ended &= rows.keys()
                await pause(halt, LOOK_EVERY_SECONDS)
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def _caught_up(self, halt: asyncio.Event) -> None:
        """Wait until the read model holds every execution event published before now."""
        last = (await self._js.stream_info(self._names.executions_stream)).state.last_seq
        while not halt.is_set():
            position = await self._pool.fetchval(_POSITION, self._names.executions_stream)
            if position is not None and position >= last:
                return
            await pause(halt, 0.1)

    async def _walk(self, row: asyncpg.Record) -> None:
        """Walk one backfill's range from its last progress to the end, or until cancelled."""
        backfill_id: UUID = row["id"]
        job_id: UUID = row["job_id"]
        end: datetime = row["range_end"]
        counts = BackfillCounts(
            done=row["done"], requested=row["requested"], already_succeeded=row["already_succeeded"],
            in_flight=row["in_flight"],
        )  # fmt: skip
        cursor: datetime = row["through"] or row["range_start"] - _TICK
        spacing = 1.0 / row["per_second"]
        next_at = time.monotonic()
        reported_at, reported_done = time.monotonic(), counts.done

        async def end_with(event: BackfillCompleted | BackfillCancelled, what: str) -> None:
            await publish_result(self._js, self._names, "backfill", event, backfill_message_id(backfill_id, what))

        envelope = {"backfill_id": backfill_id, "job_id": job_id, "account_id": row["account_id"]}
        while True:
            look = await self._pool.fetchrow(_LOOK, backfill_id)
            if look is None or look["status"] != "running":
                return  # cancelled: from the next occurrence on, nothing more is requested
            loaded = await load_live(self._store, job_id)
            if loaded is None or isinstance(loaded.event.job.schedule, AfterSchedule):
                reason = "the job was deleted" if loaded is None else "the job runs after another now"
                await end_with(BackfillCancelled(**envelope, occurred_at=datetime.now(UTC), reason=reason), "cancelled")
                return
            job = loaded.event.job
            if not job.enabled or not has_target(job):  # a paused job's backfills (or one with nothing to run) wait
                await asyncio.sleep(LOOK_EVERY_SECONDS)
                continue
            # Off the event loop: a schedule with many exclusions may take a while to step over them.
            nominal = await asyncio.to_thread(next_fire, job, cursor)
            now = datetime.now(UTC)
            if nominal is None or nominal > end:
                await end_with(BackfillCompleted(**envelope, occurred_at=now, counts=counts), "completed")
                return
            horizon = self._retention.history_from(look["horizon"], now)
            if horizon is not None and nominal < horizon:
                # Its executions are purged (or about to be): whether it succeeded can no longer be told.
                reason = f"the rest of its range fell behind the execution history's horizon ({horizon.isoformat()})"
                await end_with(BackfillCancelled(**envelope, occurred_at=now, reason=reason), "cancelled")
                return
            requests = occurrence_requests(
                job, job_version=loaded.event.version, nominal_time=nominal, occurred_at=now,
                next_run_at=loaded.event.next_run_at, backfill_id=backfill_id,
            )  # fmt: skip
            recorded = [
                Recorded(r["webhook_id"], r["attempt"], r["status"], r["backfill_id"])
                for r in await self._pool.fetch(_RECORDED, occurrence_id(job.id, nominal), nominal)
            ]
            step = plan([target_of(r) for r in requests], recorded, backfill_id)
            for request in requests:
                attempt = step.run.get(target_of(request))
                if attempt is not None:
                    await publish_requested(self._js, self._names, as_attempt(request, attempt, now))
                    BACKFILL_REQUESTS.inc()
            counts, cursor = counted(counts, step), nominal
            if (
                counts.done - reported_done >= PROGRESS_EVERY
                or time.monotonic() - reported_at >= PROGRESS_EVERY_SECONDS
            ):
                event = BackfillProgressed(**envelope, occurred_at=now, through=cursor, counts=counts)
                msg_id = backfill_message_id(backfill_id, f"progressed-{cursor.isoformat()}")
                await publish_result(self._js, self._names, "backfill", event, msg_id)
                reported_at, reported_done = time.monotonic(), counts.done
            if step.run:  # the rate is of occurrences run: one with nothing to run is walked past at once
                next_at = max(next_at + spacing, time.monotonic())
                await asyncio.sleep(next_at - time.monotonic())


def target_of(request: ExecutionRequested) -> UUID | None:
    return request.webhook.id if request.webhook is not None else None


def as_attempt(request: ExecutionRequested, attempt: int, now: datetime) -> ExecutionRequested:
    """`request` (attempt 1 of its target) as attempt `attempt` of the same occurrence and target. A later attempt
    runs an occurrence that ended (dead-lettered or skipped) again: it is a re-drive, so the read model takes the
    earlier dead letter off the list and an operator's re-drive does not run it a second time."""
    if attempt == 1:
        return request
    return request.next_attempt(now, redrive=True, attempt=attempt)
