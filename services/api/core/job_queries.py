"""The job read side, written once: every surface reads jobs as JobRecords and maps them to what it shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
import msgspec

from services.api.core.fields import Overlap
from services.api.core.stats import account_scope
from shared.contracts.jobs import FlowControl, MisfirePolicy, RetryPolicy, TaskSpec
from shared.contracts.schedules import Exclusions, Schedule

JobStatus = Literal["pending", "running", "completed", "failed", "cancelled", "paused"]

# The ticker's view of the next run wins unless the job changed after that occurrence was fired.
NEXT_RUN_AT = "CASE WHEN r.job_version >= j.version THEN r.next_run_at ELSE j.next_run_at END"
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
_COLUMNS = f"""
j.id, j.account_id, j.number, j.name, j.description, j.type, j.schedule, j.timezone, j.enabled, j.task, j.retry,
    j.timeout_seconds, j.misfire, j.overlap, j.jitter_seconds, j.start_at, j.end_at, j.exclusions, j.callback_url,
    j.failure_callback_url, j.flow_control, j.priority, j.tags, j.metadata, j.created_by, j.created_at, j.updated_at,
    r.last_run_at, {NEXT_RUN_AT} AS next_run_at"""
_FROM = "FROM jobs j LEFT JOIN job_runs r ON r.job_id = j.id"


def _select(status: bool) -> str:
    """The job SELECT; its status (two subqueries per job) only when asked for."""
    return f"SELECT {_COLUMNS}, {_STATUS if status else 'NULL'} AS status {_FROM}"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as the read model holds it, its JSON columns decoded. `status` is None unless it was asked for."""

    id: UUID
    account_id: UUID
    number: int
    name: str
    description: str | None
    type: int
    schedule: Schedule
    timezone: str
    enabled: bool
    task: TaskSpec | None
    retry: RetryPolicy
    timeout_seconds: float | None
    misfire: MisfirePolicy
    overlap: Overlap
    jitter_seconds: float
    start_at: datetime | None
    end_at: datetime | None
    exclusions: Exclusions | None
    callback_url: str | None
    failure_callback_url: str | None
    flow_control: FlowControl | None
    priority: int
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None
    next_run_at: datetime | None
    status: JobStatus | None


def job_record(row: asyncpg.Record) -> JobRecord:
    values = dict(row)
    values["schedule"] = msgspec.convert(values["schedule"], Schedule)
    values["task"] = msgspec.convert(values["task"], TaskSpec) if values["task"] else None
    values["retry"] = msgspec.convert(values["retry"] or {}, RetryPolicy)
    values["misfire"] = msgspec.convert(values["misfire"], MisfirePolicy)
    values["exclusions"] = msgspec.convert(values["exclusions"], Exclusions) if values["exclusions"] else None
    values["flow_control"] = msgspec.convert(values["flow_control"], FlowControl) if values["flow_control"] else None
    values["tags"] = tuple(values["tags"])
    return JobRecord(**values)


@dataclass(frozen=True, slots=True)
class JobFilter:
    """A search of jobs: a name fragment, tags (all of them), a schedule kind, enabled or paused."""

    text: str = ""
    tags: tuple[str, ...] = ()
    kind: str | None = None
    enabled: bool | None = None
    # Leave chained jobs out (the NEXUS surface, whose document has no such kind of job).
    unchained: bool = False

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
        if self.unchained:
            conditions.append("j.kind <> 'after'")
        return " AND ".join(conditions)

    def counter(self) -> str | None:
        """The `job_stats` expression that counts what this filter matches (per account), or None for a search by
        name, tags or kind, which only a count of the rows can answer."""
        if self.text or self.tags or self.kind is not None or self.unchained:
            return None
        return {None: "total", True: "enabled", False: "total - enabled"}[self.enabled]


async def job_by_id(pool: asyncpg.Pool, job_id: UUID, *, status: bool = False) -> JobRecord | None:
    row = await pool.fetchrow(f"{_select(status)} WHERE j.id = $1", job_id)
    return None if row is None else job_record(row)


async def job_by_number(pool: asyncpg.Pool, number: int, *, status: bool = False) -> JobRecord | None:
    row = await pool.fetchrow(f"{_select(status)} WHERE j.number = $1", number)
    return None if row is None else job_record(row)


# At most this many jobs may run after one job (a chain fans out that far at each link).
MAX_JOBS_AFTER = 50


async def jobs_after(pool: asyncpg.Pool, job_id: UUID) -> list[tuple[UUID, str, str, bool]]:
    """The jobs that run after `job_id` (id, name, the outcome they run on, enabled), oldest first."""
    rows = await pool.fetch(
        "SELECT id, name, schedule->>'on' AS on, enabled FROM jobs WHERE kind = 'after' AND schedule->>'job_id' = $1"
        " ORDER BY number LIMIT $2",
        str(job_id),
        MAX_JOBS_AFTER + 1,
    )
    return [(r["id"], r["name"], r["on"], r["enabled"]) for r in rows]


async def job_ref(pool: asyncpg.Pool, number: int) -> tuple[UUID, UUID, str] | None:
    """The id, account and schedule kind of the job numbered `number`, for routes that act on a job without showing
    it."""
    row = await pool.fetchrow("SELECT id, account_id, kind FROM jobs WHERE number = $1", number)
    return None if row is None else (row["id"], row["account_id"], row["kind"])


async def list_jobs(
    pool: asyncpg.Pool,
    accounts: frozenset[UUID] | None,
    found: JobFilter,
    *,
    skip: int,
    limit: int,
    status: bool = False,
) -> list[JobRecord]:
    """Newest first, ordered by a unique key so pages are stable (jobs_by_account*, jobs_by_tags)."""
    args: list[Any] = []
    where = found.where(accounts, args)
    n = len(args)
    page = f"ORDER BY j.created_at DESC, j.id OFFSET ${n + 1} LIMIT ${n + 2}"
    if status:
        # The page's ids first: the status subqueries run for its rows only, not for every row skipped to reach it.
        query = f"{_select(True)} WHERE j.id IN (SELECT j.id FROM jobs j WHERE {where} {page})"
        rows = await pool.fetch(f"{query} ORDER BY j.created_at DESC, j.id", *args, skip, limit)
    else:
        rows = await pool.fetch(f"{_select(False)} WHERE {where} {page}", *args, skip, limit)
    return [job_record(r) for r in rows]


async def count_jobs(pool: asyncpg.Pool, accounts: frozenset[UUID] | None, found: JobFilter) -> int:
    """How many jobs `found` matches. Unless it searches by name, tags or kind, the count is read from the
    per-account counters (`job_stats`, moved by a trigger with every row of `jobs`), in constant time however many
    jobs an account has; a search counts its rows."""
    args: list[Any] = []
    if (counted := found.counter()) is not None:
        scope = account_scope(accounts, args)
        return int(await pool.fetchval(f"SELECT COALESCE(sum({counted}), 0) FROM job_stats WHERE {scope}", *args))
    return int(await pool.fetchval(f"SELECT count(*) FROM jobs j WHERE {found.where(accounts, args)}", *args))
