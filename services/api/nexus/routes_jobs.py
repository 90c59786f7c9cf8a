"""Job routes of the NEXUS API (/api/v1/jobs). Ids here are job numbers; the jobs are the other surface's too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import Body, FromPath, HeaderParameter, QueryParameter

from services.api.core.auth import Principal
from services.api.core.execution_queries import list_executions
from services.api.core.fields import JobKind
from services.api.core.job_commands import JobCommands
from services.api.core.job_mapping import changes_from, draft_from
from services.api.core.job_queries import JobFilter, list_jobs
from services.api.core.projection_wait import ProjectionWait
from services.api.core.run_now import RunNow
from services.api.http.idempotency_header import IdempotencyKeyHeader, request_key_of
from services.api.http.openapi_docs import BEARER, BODY, nexus_create_error_responses, nexus_error_responses
from services.api.nexus.access import (
    account_of,
    fresh_job,
    job_id_of,
    job_number,
    job_of,
    nexus_job_of,
    provide_nexus_principal,
)
from services.api.nexus.mapping import job_input
from services.api.nexus.read_models import nexus_execution, nexus_job, stats_overview
from services.api.nexus.schemas import (
    ExecuteAccepted,
    ExecuteRequest,
    Message,
    NexusExecution,
    NexusJob,
    NexusJobCreate,
    NexusJobUpdate,
    StatsOverview,
)

MAX_LIMIT = 1000
MAX_EXECUTIONS_LIMIT = 500
MAX_SKIP = 1_000_000

AccountHeader = Annotated[
    str | None,
    HeaderParameter(
        name="X-Account-Id",
        required=False,
        description="The account a new job belongs to; needed when the token may act on more than one",
    ),
]


async def _set_active(
    commands: JobCommands,
    pool: asyncpg.Pool,
    projection: ProjectionWait,
    principal: Principal,
    job_id: str,
    *,
    active: bool,
) -> None:
    target = await job_id_of(pool, principal, job_id)
    appended = await commands.set_enabled(principal, target, active, require_target=True)
    await projection.job_event(appended.sequence)


JOB_ERRORS = nexus_error_responses(401, 403, 404, 409, 503)
JOB_BODY_ERRORS = nexus_error_responses(*BODY, 401, 403, 404, 409, 503)


class NexusJobController(Controller):
    path = "/jobs"
    tags = ["nexus jobs"]
    security = BEARER
    dependencies = {"principal": Provide(provide_nexus_principal)}

    @post("/", status_code=201, summary="Create a job", responses=nexus_create_error_responses(*BODY, 401, 403, 503))
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[NexusJobCreate, Body()],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
        account: AccountHeader = None,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> NexusJob:
        draft = draft_from(job_input(data), datetime.now(UTC))
        account_id = account_of(principal, account)
        key = await request_key_of(request, idempotency_key, account_id)
        appended = await commands.create_job(
            principal, account_id=account_id, draft=draft, require_target=True, key=key
        )
        await projection.job_event(appended.sequence)
        return await fresh_job(pool, appended.event.job_id)

    @get("/", summary="List jobs, newest first", responses=nexus_error_responses(401, 503))
    async def index(
        self,
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
        skip: Annotated[int, QueryParameter(ge=0, le=MAX_SKIP)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
        is_active: Annotated[bool | None, QueryParameter()] = None,
        job_type: Annotated[JobKind | None, QueryParameter()] = None,
        tags: Annotated[str | None, QueryParameter(description="Comma-separated; a job must have all")] = None,
    ) -> list[NexusJob]:
        wanted = tuple(t.strip() for t in (tags or "").split(",") if t.strip())
        found = JobFilter(tags=wanted, kind=job_type, enabled=is_active, unchained=True)
        jobs = await list_jobs(pool, principal.accounts, found, skip=skip, limit=limit, status=True)
        return [nexus_job(j) for j in jobs]

    @get(
        "/stats/overview",
        summary="Counts over the caller's jobs and executions",
        responses=nexus_error_responses(401, 503),
    )
    async def stats(self, principal: NamedDependency[Principal], pool: NamedDependency[asyncpg.Pool]) -> StatsOverview:
        return await stats_overview(pool, principal.accounts, datetime.now(UTC))

    @get("/{job_id:str}", summary="Get a job", responses=JOB_ERRORS)
    async def read(
        self, job_id: FromPath[str], principal: NamedDependency[Principal], pool: NamedDependency[asyncpg.Pool]
    ) -> NexusJob:
        return await nexus_job_of(pool, principal, job_id)

    @put("/{job_id:str}", summary="Update a job", responses=JOB_BODY_ERRORS)
    async def update(
        self,
        job_id: FromPath[str],
        data: Annotated[NexusJobUpdate, Body()],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> NexusJob:
        current = await job_of(pool, principal, job_id)
        changes = changes_from(job_input(data), current, datetime.now(UTC))
        appended = await commands.update_job(principal, current.id, changes, require_target=True)
        await projection.job_event(appended.sequence)
        return await fresh_job(pool, current.id)

    @delete("/{job_id:str}", status_code=204, summary="Delete a job", responses=JOB_ERRORS)
    async def remove(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> None:
        appended = await commands.delete_job(principal, await job_id_of(pool, principal, job_id))
        await projection.job_event(appended.sequence)

    @post(
        "/{job_id:str}/execute",
        status_code=200,
        summary="Run a job now, with optional argument overrides",
        responses=JOB_BODY_ERRORS,
    )
    async def execute(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
        run_now: NamedDependency[RunNow],
        projection: NamedDependency[ProjectionWait],
        data: Annotated[ExecuteRequest | None, Body()] = None,
    ) -> ExecuteAccepted:
        target = await job_id_of(pool, principal, job_id)
        overrides = data or ExecuteRequest()
        requests, sequence = await run_now.run(
            principal, target, args=overrides.task_args, kwargs=overrides.task_kwargs
        )
        await projection.execution_event(sequence)
        return ExecuteAccepted(message="Job execution started", task_id=str(requests[0].execution_id))

    @post("/{job_id:str}/pause", status_code=200, summary="Pause a job", responses=JOB_ERRORS)
    async def pause(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> Message:
        await _set_active(commands, pool, projection, principal, job_id, active=False)
        return Message(message="Job paused")

    @post(
        "/{job_id:str}/resume",
        status_code=200,
        summary="Resume a paused job (it fires from now on)",
        responses=JOB_ERRORS,
    )
    async def resume(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> Message:
        await _set_active(commands, pool, projection, principal, job_id, active=True)
        return Message(message="Job resumed")

    @get("/{job_id:str}/executions", summary="Executions of a job, newest first", responses=JOB_ERRORS)
    async def executions(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
        skip: Annotated[int, QueryParameter(ge=0, le=MAX_SKIP)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_EXECUTIONS_LIMIT)] = 50,
    ) -> list[NexusExecution]:
        number = job_number(job_id)
        target = await job_id_of(pool, principal, job_id)
        executions = await list_executions(pool, target, skip=skip, limit=limit, numbered=True)
        return [nexus_execution(e, e.number, number) for e in executions if e.number is not None]
