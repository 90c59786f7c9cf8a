"""Queries answered from the Postgres read models. Every query is served by an index."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import msgspec

from services.api.schemas import ExecutionOut, JobOut, WebhookOut
from shared.contracts.schedules import CronSchedule, Schedule

# The ticker's view of the next run wins unless the job changed after that occurrence was fired.
_JOB_SELECT = (
    "SELECT j.id, j.account_id, j.name, j.schedule, j.type, j.timezone, j.enabled, r.last_run_at,"
    " CASE WHEN r.job_version >= j.version THEN r.next_run_at ELSE j.next_run_at END AS next_run_at,"
    " j.created_at, j.updated_at FROM jobs j LEFT JOIN job_runs r ON r.job_id = j.id"
)
_EXECUTION_COLUMNS = (
    "id, job_id, webhook_id, occurrence_id, nominal_time AS scheduled_at, status, attempt, started_at, finished_at,"
    " response_code, response_body, error, worker_id, duration_ms, created_at"
)


def schedule_text(schedule: Schedule) -> str:
    """The `schedule` string of the Scheduler service API (a cron expression)."""
    return schedule.expression if isinstance(schedule, CronSchedule) else msgspec.json.encode(schedule).decode()


def _job(row: asyncpg.Record) -> JobOut:
    values = dict(row)
    values["schedule"] = schedule_text(msgspec.convert(values["schedule"], Schedule))
    return JobOut(**values)


async def get_job(pool: asyncpg.Pool, job_id: UUID) -> JobOut | None:
    row = await pool.fetchrow(f"{_JOB_SELECT} WHERE j.id = $1", job_id)
    return None if row is None else _job(row)


async def get_webhook(pool: asyncpg.Pool, webhook_id: UUID) -> tuple[WebhookOut, UUID] | None:
    """The webhook and its account id."""
    row = await pool.fetchrow(
        "SELECT id, job_id, account_id, url, method, headers, query_params, body_template, created_at, updated_at"
        " FROM webhooks WHERE id = $1",
        webhook_id,
    )
    if row is None:
        return None
    values = dict(row)
    account_id = values.pop("account_id")
    return WebhookOut(**values), account_id


async def list_executions(
    pool: asyncpg.Pool, job_id: UUID, *, skip: int, limit: int, status: str | None
) -> tuple[list[ExecutionOut], int]:
    """Newest first, ordered by a unique key so pages are stable."""
    where, args = "job_id = $1", list[object]([job_id])
    if status is not None:
        where += " AND status = $2"
        args.append(status)
    n = len(args)
    rows = await pool.fetch(
        f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE {where}"
        f" ORDER BY created_at DESC, id DESC OFFSET ${n + 1} LIMIT ${n + 2}",
        *args,
        skip,
        limit,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM executions WHERE {where}", *args)
    return [ExecutionOut(**dict(r)) for r in rows], int(total)
