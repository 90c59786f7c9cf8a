"""The dashboard's reads from the Postgres read models, scoped to the caller's accounts; each one uses an index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from services.api.core.fields import ExecutionStatus
from services.api.core.job_queries import JobFilter, count_jobs, list_jobs
from services.api.core.stats import account_scope, counter_totals
from services.api.ui.job_view import JobView, job_view

# Every execution status, in the order the dashboard shows them (tests/unit/test_dashboard_outcomes.py keeps the
# list complete).
OUTCOMES: tuple[ExecutionStatus, ...] = (
    "success", "failure", "timed_out", "dead_letter", "missed", "skipped", "running", "queued",
)  # fmt: skip
FAILED = ("failure", "timed_out", "dead_letter")
CHART_MINUTES = 60


@dataclass(frozen=True, slots=True)
class Overview:
    """What the overview shows. Lateness is how long after its nominal time a first attempt started."""

    jobs_total: int
    jobs_enabled: int
    last_hour: dict[str, int]
    last_day: dict[str, int]
    dead_letters: int
    lateness_p50_ms: float | None
    lateness_p99_ms: float | None
    per_minute: list[int]
    lateness_p99_per_minute: list[float | None]

    @property
    def jobs_paused(self) -> int:
        return self.jobs_total - self.jobs_enabled

    @property
    def per_minute_peak(self) -> int:
        return max(self.per_minute, default=0)

    @property
    def lateness_p99_peak_ms(self) -> float | None:
        return max((v for v in self.lateness_p99_per_minute if v is not None), default=None)

    @property
    def success_rate_day(self) -> float | None:
        finished = sum(self.last_day.get(s, 0) for s in ("success", *FAILED))
        return 100.0 * self.last_day.get("success", 0) / finished if finished else None


async def overview(pool: asyncpg.Pool, accounts: frozenset[UUID] | None, now: datetime) -> Overview:
    """Jobs and dead letters from the projector's counters; the last day's executions from
    executions_by_account_time."""
    args: list[Any] = []
    scope = account_scope(accounts, args)
    n = len(args)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        totals = await counter_totals(conn, accounts)
        by_status = await conn.fetch(
            f"SELECT status, count(*) FILTER (WHERE created_at > ${n + 1}) AS hour, count(*) AS day"
            f" FROM executions WHERE {scope} AND created_at > ${n + 2} GROUP BY status",
            *args,
            now - timedelta(hours=1),
            now - timedelta(days=1),
        )
        minutes = await conn.fetch(
            f"SELECT floor(extract(epoch FROM ${n + 1} - created_at) / 60)::int AS ago, count(*) AS n,"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - nominal_time))"
            " FILTER (WHERE attempt = 1 AND NOT manual AND started_at IS NOT NULL) AS p99"
            f" FROM executions WHERE {scope} AND created_at > ${n + 2} GROUP BY ago",
            *args,
            now,
            now - timedelta(minutes=CHART_MINUTES),
        )
        lateness = await conn.fetchrow(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP"
            " (ORDER BY extract(epoch FROM started_at - nominal_time)) AS p"
            f" FROM executions WHERE {scope} AND created_at > ${n + 1}"
            " AND attempt = 1 AND NOT manual AND started_at IS NOT NULL",
            *args,
            now - timedelta(minutes=15),
        )
    per_minute = [0] * CHART_MINUTES
    p99s: list[float | None] = [None] * CHART_MINUTES
    for row in minutes:
        slot = CHART_MINUTES - 1 - min(max(row["ago"], 0), CHART_MINUTES - 1)
        per_minute[slot] += int(row["n"])
        p99s[slot] = None if row["p99"] is None else max(float(row["p99"]) * 1000, 0.0)
    quantiles = lateness["p"] if lateness is not None else None
    return Overview(
        jobs_total=totals.jobs_total,
        jobs_enabled=totals.jobs_enabled,
        last_hour={r["status"]: int(r["hour"]) for r in by_status if r["hour"]},
        last_day={r["status"]: int(r["day"]) for r in by_status},
        dead_letters=totals.count("dead_letter"),
        lateness_p50_ms=max(quantiles[0] * 1000, 0.0) if quantiles else None,
        lateness_p99_ms=max(quantiles[1] * 1000, 0.0) if quantiles else None,
        per_minute=per_minute,
        lateness_p99_per_minute=p99s,
    )


async def search_jobs(
    pool: asyncpg.Pool, accounts: frozenset[UUID] | None, found: JobFilter, *, skip: int, limit: int
) -> tuple[list[tuple[JobView, UUID]], int]:
    """Newest first; each job with its account, and how many match."""
    jobs = await list_jobs(pool, accounts, found, skip=skip, limit=limit, status=True)
    return [(job_view(j), j.account_id) for j in jobs], await count_jobs(pool, accounts, found)


EXECUTION_FIELDS = (
    "e.id, e.job_id, e.account_id, e.webhook_id, e.occurrence_id, e.nominal_time, e.status, e.attempt,"
    " e.started_at, e.finished_at, e.duration_ms, e.response_code, e.error, e.manual, e.redrive, e.created_at,"
    " e.retry_at, e.dead_lettered_at, j.name AS job_name"
)


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """The executions list's filters; `before` is the keyset cursor (time, id) of the previous page's end. Dead
    letters go by when they were dead-lettered (as the API lists and re-drives them), other executions by when
    they were requested."""

    statuses: tuple[str, ...] = ()
    job_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: tuple[datetime, UUID] | None = None
    dead_letters: bool = False

    @property
    def time_column(self) -> str:
        return "dead_lettered_at" if self.dead_letters else "created_at"

    def where(self, accounts: frozenset[UUID] | None, args: list[Any]) -> str:
        conditions = [account_scope(accounts, args, "e.account_id")]
        if self.dead_letters:
            conditions.append("e.status = 'dead_letter'")
        elif self.statuses:
            args.append(list(self.statuses))
            conditions.append(f"e.status = ANY(${len(args)}::text[])")
        if self.job_id is not None:
            args.append(self.job_id)
            conditions.append(f"e.job_id = ${len(args)}")
        column = f"e.{self.time_column}"
        if self.since is not None:
            args.append(self.since)
            conditions.append(f"{column} >= ${len(args)}")
        if self.until is not None:
            args.append(self.until)
            conditions.append(f"{column} < ${len(args)}")
        if self.before is not None:
            args += list(self.before)
            conditions.append(f"({column}, e.id) < (${len(args) - 1}, ${len(args)})")
        return " AND ".join(conditions)


async def search_executions(
    pool: asyncpg.Pool, accounts: frozenset[UUID] | None, found: ExecutionFilter, *, limit: int
) -> list[asyncpg.Record]:
    """Newest first by (time, id), a page of `limit`; with one more row fetched to tell if more follow. Served by
    executions_by_account_time, and the partial dead-letter index for dead letters."""
    args: list[Any] = []
    where = found.where(accounts, args)
    args.append(limit + 1)
    column = f"e.{found.time_column}"
    return await pool.fetch(
        f"SELECT {EXECUTION_FIELDS} FROM executions e LEFT JOIN jobs j ON j.id = e.job_id"
        f" WHERE {where} ORDER BY {column} DESC, e.id DESC LIMIT ${len(args)}",
        *args,
    )


async def execution(pool: asyncpg.Pool, execution_id: UUID) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {EXECUTION_FIELDS}, e.response_body, e.traceback, e.result, e.worker_id, e.timeout_seconds,"
        " w.url AS webhook_url, w.method AS webhook_method, w.headers AS webhook_headers,"
        " w.body_template AS webhook_body, j.task AS job_task"
        " FROM executions e LEFT JOIN jobs j ON j.id = e.job_id LEFT JOIN webhooks w ON w.id = e.webhook_id"
        " WHERE e.id = $1",
        execution_id,
    )


async def attempts(pool: asyncpg.Pool, occurrence_id: str) -> list[asyncpg.Record]:
    """Every attempt of one occurrence, first first (the unique key's index)."""
    return await pool.fetch(
        "SELECT id, webhook_id, attempt, status, started_at, finished_at, duration_ms, response_code, error,"
        " retry_at FROM executions WHERE occurrence_id = $1 ORDER BY attempt, webhook_id",
        occurrence_id,
    )
