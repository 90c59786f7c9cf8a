"""The NEXUS surface's reads: the core's job and execution records as this surface shows them, and its stats."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from services.api.core.execution_queries import ExecutionRecord
from services.api.core.fields import misfire_policy_body
from services.api.core.job_queries import JobRecord
from services.api.core.stats import account_scope, counter_totals
from services.api.nexus.schemas import ExecutionState, NexusExecution, NexusJob, StatsOverview
from shared.contracts.schedules import CalendarSchedule, CronSchedule, DateSchedule, IntervalSchedule, kind_of

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


def whole(seconds: float) -> int | float:
    """60.0 as 60: the document's clients see integers where a whole number of seconds was given."""
    return int(seconds) if seconds.is_integer() else seconds


def whole_seconds(ms: int | None) -> int | None:
    """A duration in whole seconds, as the document's integers: rounded to the nearest, halves up (1.202 s is 1,
    1.5 s is 2). The milliseconds stay on the other surface (duration_ms)."""
    return None if ms is None else (ms + 500) // 1000


def nexus_job(job: JobRecord) -> NexusJob:
    """A job of the read model (read with its status) as this surface shows it."""
    schedule, task, retry = job.schedule, job.task, job.retry
    calendar: dict[str, Any] | str | None = None
    if isinstance(schedule, CalendarSchedule):
        calendar = schedule.rrule if schedule.rrule is not None else msgspec.to_builtins(schedule.rule)
    return NexusJob(
        id=job.number,
        uuid=str(job.id),
        name=job.name,
        description=job.description,
        job_type=kind_of(schedule),  # type: ignore[arg-type]
        cron_expression=schedule.expression if isinstance(schedule, CronSchedule) else None,
        interval_seconds=whole(schedule.every_seconds) if isinstance(schedule, IntervalSchedule) else None,
        interval_anchor=schedule.anchor if isinstance(schedule, IntervalSchedule) else None,
        scheduled_time=schedule.at if isinstance(schedule, DateSchedule) else None,
        calendar_rule=calendar,
        task_name=task.name if task else None,
        task_args=list(task.args) if task else [],
        task_kwargs=task.kwargs if task else {},
        timezone=job.timezone,
        is_active=job.enabled,
        status=job.status or "pending",
        max_retries=retry.max_attempts - 1,
        retry_delay=whole(retry.base_delay_seconds),
        retry_backoff=retry.backoff != "fixed",
        priority=job.priority,
        misfire_policy=misfire_policy_body(job.misfire),
        overlap_policy=job.overlap,
        jitter_seconds=whole(job.jitter_seconds),
        start_at=job.start_at,
        end_at=job.end_at,
        tags=list(job.tags),
        metadata=job.metadata,
        created_at=job.created_at,
        updated_at=job.updated_at,
        last_run_at=job.last_run_at,
        next_run_at=job.next_run_at,
        created_by=job.created_by,
    )


def nexus_execution(execution: ExecutionRecord, number: int, job_number: int) -> NexusExecution:
    """An execution with its stream `number`, of the job numbered `job_number`."""
    return NexusExecution(
        id=number,
        job_id=job_number,
        task_id=str(execution.id),
        status=_EXECUTION_STATES.get(execution.status, "failed"),
        raw_status=execution.status,
        scheduled_at=execution.nominal_time,
        started_at=execution.started_at,
        completed_at=execution.finished_at,
        duration_seconds=whole_seconds(execution.duration_ms),
        result=execution.result,
        error_message=execution.error,
        traceback=execution.traceback,
        attempt_number=execution.attempt,
        is_retry=execution.attempt > 1,
        worker_name=execution.worker_id,
        created_at=execution.created_at,
    )


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
