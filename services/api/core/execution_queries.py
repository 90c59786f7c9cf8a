"""The executions read side, written once: a job's executions, and dead letters, as ExecutionRecords that each
surface maps to what it shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

EXECUTION_COLUMNS = (
    "id, number, job_id, webhook_id, occurrence_id, nominal_time, status, attempt, started_at, finished_at,"
    " duration_ms, response_code, response_body, result, error, traceback, worker_id, created_at, retry_at,"
    " dead_lettered_at, backfill_id"
)


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One attempt of one occurrence, as the read model holds it. `number` is its sequence on the executions
    stream (None for attempts recorded without one)."""

    id: UUID
    number: int | None
    job_id: UUID
    webhook_id: UUID | None
    occurrence_id: str
    nominal_time: datetime
    status: str
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    response_code: int | None
    response_body: str | None
    result: Any
    error: str | None
    traceback: str | None
    worker_id: str | None
    created_at: datetime
    retry_at: datetime | None
    dead_lettered_at: datetime | None
    backfill_id: UUID | None = None


def execution_record(row: asyncpg.Record) -> ExecutionRecord:
    return ExecutionRecord(**dict(row))


def _where(job_id: UUID, status: str | None, numbered: bool, args: list[Any]) -> str:
    args.append(job_id)
    where = "job_id = $1"
    if status is not None:
        args.append(status)
        where += f" AND status = ${len(args)}"
    if numbered:
        where += " AND number IS NOT NULL"
    return where


async def list_executions(
    pool: asyncpg.Pool, job_id: UUID, *, skip: int, limit: int, status: str | None = None, numbered: bool = False
) -> list[ExecutionRecord]:
    """A job's executions, newest first, ordered by a unique key so pages are stable; only those with a stream
    number when `numbered`."""
    args: list[Any] = []
    where = _where(job_id, status, numbered, args)
    n = len(args)
    rows = await pool.fetch(
        f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE {where}"
        f" ORDER BY created_at DESC, id DESC OFFSET ${n + 1} LIMIT ${n + 2}",
        *args,
        skip,
        limit,
    )
    return [execution_record(r) for r in rows]


async def count_executions(pool: asyncpg.Pool, job_id: UUID, *, status: str | None = None) -> int:
    args: list[Any] = []
    return int(
        await pool.fetchval(f"SELECT count(*) FROM executions WHERE {_where(job_id, status, False, args)}", *args)
    )
