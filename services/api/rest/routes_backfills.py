"""Backfill routes of the primary API: start, list, read and cancel a job's backfills."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from services.api.core.api_errors import BackfillNotFoundError, JobNotFoundError
from services.api.core.auth import Principal
from services.api.core.backfills import BackfillRecord, Backfills, backfill_by_id, list_backfills
from services.api.core.ids import parse_id
from services.api.core.projection_wait import ProjectionWait
from services.api.http.openapi_docs import BEARER, BODY, PROTECTED, error_responses
from services.api.rest.routes_jobs import MAX_LIMIT, load_job
from services.api.rest.schemas import BackfillCreate, BackfillOut, Page


def backfill_out(record: BackfillRecord) -> BackfillOut:
    return BackfillOut(
        id=record.id, job_id=record.job_id, account_id=record.account_id, start=record.range_start,
        end=record.range_end, per_second=record.per_second, status=record.status, total=record.total,
        done=record.done, requested=record.requested, already_succeeded=record.already_succeeded,
        in_flight=record.in_flight, through=record.through, reason=record.reason, requested_by=record.requested_by,
        created_at=record.created_at, updated_at=record.updated_at, finished_at=record.finished_at,
    )  # fmt: skip


async def _backfill(pool: asyncpg.Pool, principal: Principal, job_id: str, backfill_id: str) -> BackfillRecord:
    job = await load_job(pool, principal, job_id)
    record = await backfill_by_id(pool, job.id, parse_id(backfill_id, BackfillNotFoundError, "backfill"))
    if record is None:
        raise BackfillNotFoundError(f"backfill {backfill_id} of job {job.id} not found")
    return record


class BackfillController(Controller):
    path = "/api/jobs/{job_id:str}/backfills"
    tags = ["backfills"]
    security = BEARER

    @post(
        "/",
        status_code=202,
        summary="Run the job's past occurrences in a range that have not succeeded",
        responses=error_responses(*BODY, 404, 409, *PROTECTED),
    )
    async def start(
        self,
        job_id: FromPath[str],
        data: JSONBody[BackfillCreate],
        principal: NamedDependency[Principal],
        backfills: NamedDependency[Backfills],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> BackfillOut:
        parsed = parse_id(job_id, JobNotFoundError, "job")
        started = await backfills.start(principal, parsed, start=data.start, end=data.end, per_second=data.per_second)
        await projection.execution_event(started.sequence)
        record = await backfill_by_id(pool, parsed, started.event.backfill_id)
        if record is not None:
            return backfill_out(record)
        event = started.event  # not projected yet: answered from the event, as it starts
        return BackfillOut(
            id=event.backfill_id, job_id=event.job_id, account_id=event.account_id, start=event.start, end=event.end,
            per_second=event.per_second, status="running", total=event.total, done=0, requested=0,
            already_succeeded=0, in_flight=0, through=None, reason=None, requested_by=event.requested_by,
            created_at=event.occurred_at, updated_at=event.occurred_at, finished_at=None,
        )  # fmt: skip

    @get("/", summary="A job's backfills, newest first", responses=error_responses(400, 404, *PROTECTED))
    async def index(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
        skip: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
    ) -> Page[BackfillOut]:
        job = await load_job(pool, principal, job_id)
        records, total = await list_backfills(pool, job.id, skip=skip, limit=limit)
        return Page(items=[backfill_out(r) for r in records], total=total, skip=skip, limit=limit)

    @get("/{backfill_id:str}", summary="One backfill", responses=error_responses(400, 404, *PROTECTED))
    async def read(
        self,
        job_id: FromPath[str],
        backfill_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> BackfillOut:
        return backfill_out(await _backfill(pool, principal, job_id, backfill_id))

    @delete(
        "/{backfill_id:str}",
        status_code=202,
        summary="Cancel a running backfill",
        responses=error_responses(400, 404, 409, *PROTECTED),
    )
    async def cancel(
        self,
        job_id: FromPath[str],
        backfill_id: FromPath[str],
        principal: NamedDependency[Principal],
        backfills: NamedDependency[Backfills],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> BackfillOut:
        record = await _backfill(pool, principal, job_id, backfill_id)
        await projection.execution_event(await backfills.cancel(principal, record))
        return backfill_out(await _backfill(pool, principal, job_id, backfill_id))
