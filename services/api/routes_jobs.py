"""Job routes of the Scheduler service API."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from services.api.auth import Principal
from services.api.dependencies import Resources, await_projection
from services.api.domain_errors import JobNotFoundError
from services.api.read_models import get_job, list_executions, schedule_text
from services.api.schemas import ExecutionOut, ExecutionStatus, JobCreate, JobOut, Page
from shared.contracts.jobs import JobEvent

MAX_LIMIT = 1000


def parse_id(raw: str, error: type[Exception], what: str) -> UUID:
    """Path ids are UUIDs; anything else cannot name an existing resource."""
    try:
        return UUID(raw)
    except ValueError:
        raise error(f"{what} {raw!r} not found") from None


def job_from_event(event: JobEvent) -> JobOut:
    job = event.job
    return JobOut(
        id=job.id,
        account_id=job.account_id,
        name=job.name,
        schedule=schedule_text(job.schedule),
        type=job.type,
        timezone=job.timezone,
        enabled=job.enabled,
        last_run_at=None,
        next_run_at=event.next_run_at,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


async def load_job(res: Resources, principal: Principal, raw_id: str) -> JobOut:
    job_id = parse_id(raw_id, JobNotFoundError, "job")
    assert res.pool is not None
    job = await get_job(res.pool, job_id)
    if job is None:
        raise JobNotFoundError(f"job {job_id} not found")
    principal.check_account(job.account_id)
    return job


class JobController(Controller):
    path = "/api/jobs"
    tags = ["jobs"]

    @post("/", status_code=201, summary="Create a job")
    async def create(
        self, data: JSONBody[JobCreate], principal: NamedDependency[Principal], res: NamedDependency[Resources]
    ) -> JobOut:
        assert res.commands is not None
        appended = await res.commands.create_job(
            principal,
            account_id=data.account_id,
            name=data.name,
            cron=data.schedule,
            job_type=data.type,
            timezone=data.timezone,
            enabled=data.enabled,
        )
        await await_projection(res, appended.sequence)
        return job_from_event(appended.event)

    @get("/{job_id:str}", summary="Get a job")
    async def read(
        self, job_id: FromPath[str], principal: NamedDependency[Principal], res: NamedDependency[Resources]
    ) -> JobOut:
        return await load_job(res, principal, job_id)

    @get("/{job_id:str}/executions", summary="Execution history of a job, newest first")
    async def executions(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        res: NamedDependency[Resources],
        skip: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
        status: FromQuery[ExecutionStatus | None] = None,
    ) -> Page[ExecutionOut]:
        job = await load_job(res, principal, job_id)
        assert res.pool is not None
        items, total = await list_executions(res.pool, job.id, skip=skip, limit=limit, status=status)
        return Page(items=items, total=total, skip=skip, limit=limit)
