"""Queries answered from the Postgres read models. Every query is served by an index."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from services.api.rest.schemas import (
    ExecutionCounts,
    ExecutionOut,
    JobCounts,
    JobOut,
    Metrics,
    MisfirePolicyBody,
    RetryPolicyBody,
    WebhookOut,
)
from shared.contracts.jobs import MisfirePolicy, RetryPolicy
from shared.contracts.schedules import CronSchedule, Schedule
from shared.db.pool import DbConnection

# The ticker's view of the next run wins unless the job changed after that occurrence was fired.
NEXT_RUN_AT = "CASE WHEN r.job_version >= j.version THEN r.next_run_at ELSE j.next_run_at END"
_JOB_SELECT = (
    "SELECT j.id, j.account_id, j.name, j.schedule, j.type, j.timezone, j.enabled, r.last_run_at,"
    f" {NEXT_RUN_AT} AS next_run_at, j.created_at, j.updated_at, j.retry, j.timeout_seconds, j.misfire,"
    " j.overlap AS overlap_policy, j.jitter_seconds, j.start_at, j.end_at"
    " FROM jobs j LEFT JOIN job_runs r ON r.job_id = j.id"
)
EXECUTION_COLUMNS = (
    "id, job_id, webhook_id, occurrence_id, nominal_time AS scheduled_at, status, attempt, started_at, finished_at,"
    " response_code, response_body, error, worker_id, duration_ms, created_at, retry_at, dead_lettered_at"
)


def schedule_text(schedule: Schedule) -> str:
    """The `schedule` string of the Scheduler service API (a cron expression)."""
    return schedule.expression if isinstance(schedule, CronSchedule) else msgspec.json.encode(schedule).decode()


def retry_policy_body(policy: RetryPolicy) -> RetryPolicyBody:
    return RetryPolicyBody(
        max_attempts=policy.max_attempts,
        backoff_seconds=policy.base_delay_seconds,
        backoff_type=policy.backoff,
        jitter=policy.jitter,
        max_backoff_seconds=policy.max_delay_seconds,
    )


def misfire_policy_body(policy: MisfirePolicy) -> MisfirePolicyBody:
    return MisfirePolicyBody(policy=policy.policy, grace_seconds=policy.grace_seconds)


def misfire_policy_of(body: MisfirePolicyBody) -> MisfirePolicy:
    return MisfirePolicy(policy=body.policy, grace_seconds=body.grace_seconds)


def _job(row: asyncpg.Record) -> JobOut:
    values = dict(row)
    values["schedule"] = schedule_text(msgspec.convert(values["schedule"], Schedule))
    values["retry_policy"] = retry_policy_body(msgspec.convert(values.pop("retry"), RetryPolicy))
    values["misfire_policy"] = misfire_policy_body(msgspec.convert(values.pop("misfire"), MisfirePolicy))
    return JobOut(**values)


async def get_job(pool: asyncpg.Pool, job_id: UUID) -> JobOut | None:
    row = await pool.fetchrow(f"{_JOB_SELECT} WHERE j.id = $1", job_id)
    return None if row is None else _job(row)


async def list_jobs(
    pool: asyncpg.Pool, account_id: UUID, *, skip: int, limit: int, enabled: bool | None
) -> tuple[list[JobOut], int]:
    """Newest first, ordered by a unique key so pages are stable; served by jobs_by_account(_enabled)."""
    where, args = "j.account_id = $1", list[object]([account_id])
    if enabled is not None:
        where += " AND j.enabled = $2"
        args.append(enabled)
    n = len(args)
    rows = await pool.fetch(
        f"{_JOB_SELECT} WHERE {where} ORDER BY j.created_at DESC, j.id OFFSET ${n + 1} LIMIT ${n + 2}",
        *args,
        skip,
        limit,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM jobs j WHERE {where}", *args)
    return [_job(r) for r in rows], int(total)


async def get_webhook(pool: asyncpg.Pool, webhook_id: UUID) -> tuple[WebhookOut, UUID] | None:
    """The webhook and its account id."""
    row = await pool.fetchrow(
        "SELECT id, job_id, account_id, url, method, headers, query_params, body_template, content_type,"
        " created_at, updated_at, enabled, disabled_reason FROM webhooks WHERE id = $1",
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
        f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE {where}"
        f" ORDER BY created_at DESC, id DESC OFFSET ${n + 1} LIMIT ${n + 2}",
        *args,
        skip,
        limit,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM executions WHERE {where}", *args)
    return [execution_out(r) for r in rows], int(total)


def execution_out(row: asyncpg.Record) -> ExecutionOut:
    return ExecutionOut(**dict(row))


@dataclass(slots=True)
class AccountStats:
    """One account's counters, as the Prometheus view shows them."""

    account_id: UUID
    jobs_total: int = 0
    jobs_enabled: int = 0
    executions: dict[str, int] = field(default_factory=dict)
    duration_ms_sum: int = 0
    durations: int = 0


def account_scope(accounts: frozenset[UUID] | None, args: list[Any], column: str = "account_id") -> str:
    """The SQL condition limiting `column` to `accounts` (None: every account); appends its parameter to `args`."""
    if accounts is None:
        return "TRUE"
    if len(accounts) == 1:  # the usual token: an equality lets an (account, time) index give rows in order
        args.append(next(iter(accounts)))
        return f"{column} = ${len(args)}"
    args.append(list(accounts))
    return f"{column} = ANY(${len(args)}::uuid[])"


async def account_stats(pool: asyncpg.Pool, accounts: frozenset[UUID] | None) -> list[AccountStats]:
    """Per-account counters over `accounts` (None: every account), ordered by account."""
    args: list[Any] = []
    scope = account_scope(accounts, args)
    by_account: dict[UUID, AccountStats] = {}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        for row in await conn.fetch(f"SELECT account_id, total, enabled FROM job_stats WHERE {scope}", *args):
            stats = by_account.setdefault(row["account_id"], AccountStats(row["account_id"]))
            stats.jobs_total, stats.jobs_enabled = int(row["total"]), int(row["enabled"])
        for row in await conn.fetch(
            f"SELECT account_id, status, executions, duration_ms_sum, durations FROM execution_stats WHERE {scope}",
            *args,
        ):
            stats = by_account.setdefault(row["account_id"], AccountStats(row["account_id"]))
            stats.executions[row["status"]] = int(row["executions"])
            stats.duration_ms_sum += int(row["duration_ms_sum"])
            stats.durations += int(row["durations"])
    return [by_account[a] for a in sorted(by_account)]


@dataclass(frozen=True, slots=True)
class CounterTotals:
    """The projector's counters summed over a set of accounts."""

    jobs_total: int
    jobs_enabled: int
    by_status: dict[str, int]
    duration_ms_sum: int
    durations: int

    @property
    def executions(self) -> int:
        return sum(self.by_status.values())

    def count(self, *statuses: str) -> int:
        return sum(self.by_status.get(s, 0) for s in statuses)

    @property
    def average_duration_ms(self) -> float:
        return self.duration_ms_sum / self.durations if self.durations else 0.0


async def counter_totals(conn: DbConnection, accounts: frozenset[UUID] | None) -> CounterTotals:
    """Sum the counters over `accounts` (None: every account); run it inside the caller's transaction."""
    args: list[Any] = []
    scope = account_scope(accounts, args)
    # An aggregate without GROUP BY has exactly one row.
    [jobs] = await conn.fetch(
        f"SELECT COALESCE(sum(total), 0) AS total, COALESCE(sum(enabled), 0) AS enabled FROM job_stats WHERE {scope}",
        *args,
    )
    rows = await conn.fetch(
        "SELECT status, sum(executions) AS n, sum(duration_ms_sum) AS ms, sum(durations) AS timed"
        f" FROM execution_stats WHERE {scope} GROUP BY status",
        *args,
    )
    return CounterTotals(
        jobs_total=int(jobs["total"]),
        jobs_enabled=int(jobs["enabled"]),
        by_status={r["status"]: int(r["n"]) for r in rows},
        duration_ms_sum=sum(int(r["ms"]) for r in rows),
        durations=sum(int(r["timed"]) for r in rows),
    )


async def metrics(pool: asyncpg.Pool, accounts: frozenset[UUID] | None, now: datetime) -> Metrics:
    """Counts over `accounts` (None: every account), from the counters the projector's triggers keep."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        totals = await counter_totals(conn, accounts)
    total, success = totals.executions, totals.count("success")
    return Metrics(
        timestamp=now,
        jobs=JobCounts(
            total=totals.jobs_total, enabled=totals.jobs_enabled, disabled=totals.jobs_total - totals.jobs_enabled
        ),
        executions=ExecutionCounts(
            total=total,
            queued=totals.count("queued"),
            running=totals.count("running"),
            success=success,
            failure=totals.count("failure"),
            timed_out=totals.count("timed_out"),
            dead_letter=totals.count("dead_letter"),
            success_rate=round(100.0 * success / total, 2) if total else 0.0,
            avg_duration_ms=round(totals.average_duration_ms, 2),
        ),
    )
