"""Queries of the NEXUS surface, answered from the same read models as the other surface."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from services.api.core.read_models import NEXT_RUN_AT, account_scope, counter_totals
from services.api.nexus.mapping import nexus_job
from services.api.nexus.schemas import ExecutionState, NexusExecution, NexusJob, StatsOverview

# A job's status follows its executions: running while one runs; once its schedule has no more runs, running until
# its last scheduled execution ends, then completed or failed by that execution; paused while disabled; pending
# otherwise.
_STATUS = f"""
CASE
    WHEN NOT j.enabled THEN 'paused'
    WHEN EXISTS (SELECT 1 FROM executions e WHERE e.job_id = j.id AND e.status = 'running') THEN 'running'
    WHEN ({NEXT_RUN_AT}) IS NULL AND r.last_run_at IS NOT NULL THEN
        CASE (
            SELECT e.status FROM executions e WHERE e.job_id = j.id AND NOT e.manual
            ORDER BY e.created_at DESC, e.id DESC LIMIT 1
        )
            WHEN 'failure' THEN 'failed' WHEN 'timed_out' THEN 'failed' WHEN 'dead_letter' THEN 'failed'
            WHEN 'queued' THEN 'running' ELSE 'completed' END
    ELSE 'pending'
END"""
NEXUS_JOB_SELECT = f"""
SELECT j.id, j.account_id, j.number, j.name, j.description, j.schedule, j.timezone, j.enabled, j.task, j.retry,
    j.misfire, j.overlap, j.jitter_seconds, j.start_at, j.end_at,
    j.priority, j.tags, j.metadata, j.created_by, j.created_at, j.updated_at, r.last_run_at,
    {NEXT_RUN_AT} AS next_run_at, {_STATUS} AS status
FROM jobs j LEFT JOIN job_runs r ON r.job_id = j.id"""

_EXECUTION_STATES: dict[str, ExecutionState] = {
    "queued": "pending",
    "running": "running",
    "success": "completed",
    "failure": "failed",
    "timed_out": "failed",
    "dead_letter": "failed",
    "missed": "cancelled",  # never ran: its misfire policy did not fire it
    "skipped": "cancelled",  # never ran: its overlap policy held it back
}


def whole_seconds(ms: int | None) -> int | None:
    """A duration in whole seconds, as the document's integers: rounded to the nearest, halves up (1.202 s is 1,
    1.5 s is 2). The milliseconds stay on the other surface (duration_ms)."""
    return None if ms is None else (ms + 500) // 1000


@dataclass(frozen=True, slots=True)
class JobFilter:
    """The jobs list's search: a name fragment, tags (all of them), a schedule type, enabled or paused."""

    text: str = ""
    tags: tuple[str, ...] = ()
    kind: str | None = None
    enabled: bool | None = None

    def where(self, accounts: frozenset[UUID] | None, args: list[Any]) -> str:
        conditions = [account_scope(accounts, args, "j.account_id")]
        if self.text:
            escaped = self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
            conditions.append(f"j.name ILIKE ${len(args)}")
        if self.tags:
            args.append(list(self.tags))
            conditions.append(f"j.tags @> ${len(args)}::text[]")
        if self.kind is not None:
            args.append(self.kind)
            conditions.append(f"j.kind = ${len(args)}")
        if self.enabled is not None:
            args.append(self.enabled)
            conditions.append(f"j.enabled = ${len(args)}")
        return " AND ".join(conditions)


async def job_by_number(pool: asyncpg.Pool, number: int) -> tuple[NexusJob, UUID] | None:
    """The job and its account."""
    row = await pool.fetchrow(f"{NEXUS_JOB_SELECT} WHERE j.number = $1", number)
    return None if row is None else (nexus_job(row), row["account_id"])


async def job_ref(pool: asyncpg.Pool, number: int) -> tuple[UUID, UUID] | None:
    """The job's id and account, for routes that act on a job without showing it."""
    row = await pool.fetchrow("SELECT id, account_id FROM jobs WHERE number = $1", number)
    return None if row is None else (row["id"], row["account_id"])


async def job_by_id(pool: asyncpg.Pool, job_id: UUID) -> tuple[NexusJob, UUID] | None:
    """The job and its account."""
    row = await pool.fetchrow(f"{NEXUS_JOB_SELECT} WHERE j.id = $1", job_id)
    return None if row is None else (nexus_job(row), row["account_id"])


async def list_jobs(
    pool: asyncpg.Pool,
    accounts: frozenset[UUID] | None,
    *,
    skip: int,
    limit: int,
    is_active: bool | None,
    job_type: str | None,
    tags: list[str],
) -> list[NexusJob]:
    """Newest first; a job must carry every tag asked for."""
    args: list[Any] = []
    where = JobFilter(tags=tuple(tags), kind=job_type, enabled=is_active).where(accounts, args)
    args += [skip, limit]
    rows = await pool.fetch(
        f"{NEXUS_JOB_SELECT} WHERE {where} ORDER BY j.created_at DESC, j.id OFFSET ${len(args) - 1} LIMIT ${len(args)}",
        *args,
    )
    return [nexus_job(r) for r in rows]


async def list_executions(
    pool: asyncpg.Pool, job_id: UUID, job_number: int, *, skip: int, limit: int
) -> list[NexusExecution]:
    rows = await pool.fetch(
        "SELECT number, id, status, nominal_time, started_at, finished_at, duration_ms, result, error, traceback,"
        " attempt, worker_id, created_at FROM executions WHERE job_id = $1 AND number IS NOT NULL"
        " ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3",
        job_id,
        skip,
        limit,
    )
    return [
        NexusExecution(
            id=r["number"],
            job_id=job_number,
            task_id=str(r["id"]),
            status=_EXECUTION_STATES.get(r["status"], "failed"),
            raw_status=r["status"],
            scheduled_at=r["nominal_time"],
            started_at=r["started_at"],
            completed_at=r["finished_at"],
            duration_seconds=whole_seconds(r["duration_ms"]),
            result=r["result"],
            error_message=r["error"],
            traceback=r["traceback"],
            attempt_number=r["attempt"],
            is_retry=r["attempt"] > 1,
            worker_name=r["worker_id"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


async def stats_overview(pool: asyncpg.Pool, accounts: frozenset[UUID] | None, now: datetime) -> StatsOverview:
    args: list[Any] = []
    scope = account_scope(accounts, args)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        totals = await counter_totals(conn, accounts)
        recent = await conn.fetchval(
            f"SELECT count(*) FROM executions WHERE {scope} AND created_at > ${len(args) + 1}",
            *args,
            now - timedelta(hours=24),
        )
    return StatsOverview(
        total_jobs=totals.jobs_total,
        active_jobs=totals.jobs_enabled,
        paused_jobs=totals.jobs_total - totals.jobs_enabled,
        total_executions=totals.executions,
        successful_executions=totals.count("success"),
        failed_executions=totals.count("failure", "timed_out", "dead_letter"),
        running_executions=totals.count("running"),
        average_duration=round(totals.average_duration_ms / 1000, 3),
        last_24h_executions=int(recent),
    )
