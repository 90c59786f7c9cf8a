"""Backfills at the api: starting one (checked against the limits docs/schedules.md states) and cancelling one are
events on the EXECUTIONS stream; the projector's runner does the rest. Listing them reads the read model."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
from nats.js import JetStreamContext

from services.api.core.api_errors import ConflictError, JobNotFoundError, ValidationFailedError
from services.api.core.auth import Principal
from shared.bus.executions import publish_result
from shared.bus.job_store import JobEventStore, load_live
from shared.contracts.backfills import (
    BACKFILL_SETTLE_SECONDS,
    MAX_BACKFILL_OCCURRENCES,
    MAX_BACKFILL_RATE,
    MAX_RUNNING_BACKFILLS,
    MIN_BACKFILL_RATE,
    BackfillCancelled,
    BackfillRequested,
    backfill_message_id,
)
from shared.contracts.executions import has_target
from shared.contracts.jobs import JobState
from shared.contracts.schedules import AfterSchedule
from shared.contracts.subjects import Names
from shared.domain.errors import ValidationFailed
from shared.domain.job_checks import checked_utc
from shared.domain.retention import Retention
from shared.schedule.firing import fires_between

BACKFILL_COLUMNS = (
    "id, job_id, account_id, range_start, range_end, per_second, total, status, through, done, requested,"
    " already_succeeded, in_flight, reason, requested_by, created_at, updated_at, finished_at"
)


@dataclass(frozen=True, slots=True)
class BackfillRecord:
    """A backfill as the read model holds it."""

    id: UUID
    job_id: UUID
    account_id: UUID
    range_start: datetime
    range_end: datetime
    per_second: int
    total: int
    status: str
    through: datetime | None
    done: int
    requested: int
    already_succeeded: int
    in_flight: int
    reason: str | None
    requested_by: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


async def list_backfills(
    pool: asyncpg.Pool, job_id: UUID, *, skip: int, limit: int
) -> tuple[list[BackfillRecord], int]:
    """A job's backfills, newest first, and how many it has."""
    rows = await pool.fetch(
        f"SELECT {BACKFILL_COLUMNS} FROM backfills WHERE job_id = $1 ORDER BY created_at DESC, id DESC"
        " OFFSET $2 LIMIT $3",
        job_id,
        skip,
        limit,
    )
    total = await pool.fetchval("SELECT count(*) FROM backfills WHERE job_id = $1", job_id)
    return [BackfillRecord(**dict(r)) for r in rows], int(total)


async def backfill_by_id(pool: asyncpg.Pool, job_id: UUID, backfill_id: UUID) -> BackfillRecord | None:
    row = await pool.fetchrow(
        f"SELECT {BACKFILL_COLUMNS} FROM backfills WHERE id = $1 AND job_id = $2", backfill_id, job_id
    )
    return None if row is None else BackfillRecord(**dict(row))


def _checked_time(moment: datetime, field: str) -> datetime:
    try:
        checked = checked_utc(moment)
    except ValidationFailed as exc:
        raise ValidationFailedError(f"{field}: {exc}", field) from exc
    assert checked is not None
    return checked


# Counting a range's occurrences stops after this long (a schedule whose exclusions remove most candidates).
# Generous: 10,001 plain occurrences take about a second on a busy 2-core box (CI once took over 2 s); only a schedule
# whose exclusions remove nearly every candidate comes near it. It runs in a thread, off the event loop.
COUNT_BUDGET_SECONDS = 10.0


def _count(job: JobState, start: datetime, end: datetime) -> int | None:
    """How many occurrences `job` has in [start, end], up to one more than a backfill may hold; None when counting
    them takes longer than the budget."""
    deadline = time.monotonic() + COUNT_BUDGET_SECONDS
    total = 0
    for _ in itertools.islice(fires_between(job, start, end), MAX_BACKFILL_OCCURRENCES + 1):
        total += 1
        if time.monotonic() > deadline:
            return None
    return total


@dataclass(frozen=True, slots=True)
class Started:
    event: BackfillRequested
    sequence: int


class Backfills:
    """Starts and cancels backfills."""

    def __init__(
        self,
        store: JobEventStore,
        js: JetStreamContext,
        names: Names,
        pool: asyncpg.Pool,
        retention: Retention,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._js = js
        self._names = names
        self._pool = pool
        self._retention = retention
        self._clock = clock

    async def start(
        self, principal: Principal, job_id: UUID, *, start: datetime, end: datetime, per_second: int
    ) -> Started:
        loaded = await load_live(self._store, job_id)
        if loaded is None:
            raise JobNotFoundError(f"job {job_id} not found")
        job = loaded.event.job
        principal.check_account(job.account_id)
        if isinstance(job.schedule, AfterSchedule):
            raise ValidationFailedError(
                "a chained job has no schedule of its own to backfill: backfill the job it runs after", "job_id"
            )
        if not has_target(job):
            raise ValidationFailedError("the job has nothing to run: no task and no enabled webhook", "job_id")
        start, end = _checked_time(start, "start"), _checked_time(end, "end")
        now = self._clock()
        if start >= end:
            raise ValidationFailedError("start: must be before end", "start")
        settle = timedelta(seconds=job.jitter_seconds + BACKFILL_SETTLE_SECONDS)
        if end > now - settle:
            detail = (
                f"end: must be at least {settle.total_seconds():g} s ago (the job's jitter and"
                f" {BACKFILL_SETTLE_SECONDS:g} s), so the ticker has fired what it will: a backfill runs the past"
            )
            raise ValidationFailedError(detail, "end")
        if not MIN_BACKFILL_RATE <= per_second <= MAX_BACKFILL_RATE:
            detail = f"per_second: must be {MIN_BACKFILL_RATE}-{MAX_BACKFILL_RATE}"
            raise ValidationFailedError(detail, "per_second")
        horizon = await self._horizon(now)
        if horizon is not None and start < horizon:
            detail = (
                f"start: the execution history before {horizon.isoformat()} is purged, so which of those occurrences"
                " succeeded is unknown"
            )
            raise ValidationFailedError(detail, "start")
        running = await self._pool.fetchval(
            "SELECT count(*) FROM backfills WHERE account_id = $1 AND status = 'running'", job.account_id
        )
        if running >= MAX_RUNNING_BACKFILLS:
            detail = (
                f"the account has {running} backfills running (at most {MAX_RUNNING_BACKFILLS}): cancel one or wait"
            )
            raise ConflictError(detail)
        total = await asyncio.to_thread(_count, job, start, end)
        if total is None:
            raise ValidationFailedError(
                f"the range's occurrences take more than {COUNT_BUDGET_SECONDS:g} s to count (its schedule excludes"
                " much of it): narrow it",
                "end",
            )
        if total > MAX_BACKFILL_OCCURRENCES:
            detail = f"the range holds more than {MAX_BACKFILL_OCCURRENCES:,} occurrences of the job; narrow it"
            raise ValidationFailedError(detail, "end")
        if total == 0:
            raise ValidationFailedError("the range holds no occurrence of the job", "start")
        event = BackfillRequested(
            backfill_id=uuid.uuid4(), job_id=job.id, account_id=job.account_id, occurred_at=now, start=start, end=end,
            per_second=per_second, total=total, requested_by=principal.subject,
        )  # fmt: skip
        return Started(event, await self._publish(event, "requested"))

    async def cancel(self, principal: Principal, record: BackfillRecord) -> int:
        """Publish the backfill's cancellation; ConflictError when it has ended. The stream sequence to wait for."""
        principal.check_account(record.account_id)
        if record.status != "running":
            raise ConflictError(f"the backfill has ended ({record.status}): there is nothing to cancel")
        event = BackfillCancelled(
            backfill_id=record.id, job_id=record.job_id, account_id=record.account_id, occurred_at=self._clock(),
            reason=f"cancelled by {principal.subject}",
        )  # fmt: skip
        return await self._publish(event, "cancelled")

    async def _horizon(self, now: datetime) -> datetime | None:
        stored = await self._pool.fetchval("SELECT horizon FROM execution_retention")
        return self._retention.history_from(stored, now)

    async def _publish(self, event: BackfillRequested | BackfillCancelled, what: str) -> int:
        return await publish_result(
            self._js, self._names, "backfill", event, backfill_message_id(event.backfill_id, what)
        )
