"""Job routes of the Scheduler service API."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from litestar import Controller, Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import UNSET, UnsetType

from services.api.core.api_errors import JobNotFoundError, ValidationFailedError
from services.api.core.auth import Principal
from services.api.core.execution_queries import count_executions, list_executions
from services.api.core.fields import (
    ExecutionStatus,
    MisfirePolicyBody,
    after_of,
    exclusions_of,
    flow_control_of,
    misfire_policy_of,
)
from services.api.core.ids import parse_id
from services.api.core.job_commands import Appended, JobChanges, JobCommands, JobDraft
from services.api.core.job_queries import MAX_JOBS_AFTER, JobFilter, count_jobs, job_by_id, jobs_after, list_jobs
from services.api.core.projection_wait import ProjectionWait
from services.api.http.idempotency_header import IdempotencyKeyHeader, request_key_of
from services.api.http.openapi_docs import BEARER, BODY, PROTECTED, create_error_responses, error_responses
from services.api.rest.mapping import (
    execution_out,
    job_from_event,
    job_out,
    retry_policy_of,
    webhook_draft,
    webhook_out,
)
from services.api.rest.schemas import ExecutionOut, JobCreate, JobOut, JobUpdate, Page, RetryPolicyBody
from shared.contracts.schedules import AfterSchedule, CronSchedule, Schedule

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
# Deep offsets cost a scan of everything skipped; beyond this, narrow the query instead.
MAX_SKIP = 1_000_000


async def load_job(pool: asyncpg.Pool, principal: Principal, raw_id: str) -> JobOut:
    job_id = parse_id(raw_id, JobNotFoundError, "job")
    job = await job_by_id(pool, job_id)
    if job is None:
        raise JobNotFoundError(f"job {job_id} not found")
    principal.check_account(job.account_id)
    return job_out(job)


async def changed_job(pool: asyncpg.Pool, projection: ProjectionWait, appended: Appended) -> JobOut:
    """The job as a command left it, once the read model has it (for last_run_at, which only it knows).

    The change is already in the log: if Postgres cannot answer now, the response still says what was done.
    """
    await projection.job_event(appended.sequence)
    try:
        record = await job_by_id(pool, appended.event.job_id)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.warning("job %s changed, but its last run time cannot be read: %s", appended.event.job_id, exc)
        record = None
    current = None if record is None else job_out(record)
    if current is not None and current.updated_at == appended.event.job.updated_at:
        return current  # the read model has this version, with the ticker's latest next_run_at
    return job_from_event(appended.event, current.last_run_at if current else None)


async def _room_after(pool: asyncpg.Pool, schedule: Schedule, job_id: UUID | None = None) -> None:
    """A chain's link only to a job with fewer than MAX_JOBS_AFTER jobs after it already (`job_id`, the job being
    changed, not counted: changing its link's outcome takes no new room)."""
    if not isinstance(schedule, AfterSchedule):
        return
    others = [j for j in await jobs_after(pool, schedule.job_id) if j[0] != job_id]
    if len(others) >= MAX_JOBS_AFTER:
        detail = f"after: at most {MAX_JOBS_AFTER} jobs may run after one job"
        raise ValidationFailedError(detail, "after")


class JobController(Controller):
    path = "/api/jobs"
    tags = ["jobs"]
    security = BEARER

    @post("/", status_code=201, summary="Create a job", responses=create_error_responses(*BODY, *PROTECTED))
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[JobCreate],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> JobOut:
        if (data.schedule is None) == (data.after is None):
            raise ValidationFailedError("give a schedule (cron) or after (a job to run after), not both", "schedule")
        given: Schedule
        if data.schedule is not None:
            given = CronSchedule(expression=data.schedule)
        else:
            assert data.after is not None
            given = after_of(data.after)
        draft = JobDraft(
            name=data.name,
            schedule=given,
            type=data.type,
            timezone=data.timezone,
            enabled=data.enabled,
            retry=retry_policy_of(data.retry_policy or RetryPolicyBody()),
            timeout_seconds=data.timeout_seconds,
            misfire=misfire_policy_of(data.misfire_policy or MisfirePolicyBody()),
            overlap=data.overlap_policy,
            jitter_seconds=data.jitter_seconds,
            start_at=data.start_at,
            end_at=data.end_at,
            exclusions=exclusions_of(data.exclusions),
            callback_url=data.callback_url,
            failure_callback_url=data.failure_callback_url,
            flow_control=flow_control_of(data.flow_control),
            webhooks=tuple(webhook_draft(w) for w in data.webhooks or ()),
        )
        await _room_after(pool, given)
        key = await request_key_of(request, idempotency_key, data.account_id)
        appended = await commands.create_job(principal, account_id=data.account_id, draft=draft, key=key)
        if key is None:
            await projection.job_event(appended.sequence)
            job = job_from_event(appended.event)
        else:  # a retry answers the job as it is now, its last run included (it may have fired since)
            job = await changed_job(pool, projection, appended)
        if data.webhooks is not None:
            job.webhooks = [webhook_out(job.id, w) for w in appended.event.job.webhooks]
        return job

    @get("/", summary="List an account's jobs, newest first", responses=error_responses(400, *PROTECTED))
    async def index(
        self,
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
        account_id: FromQuery[UUID],
        skip: Annotated[int, QueryParameter(ge=0, le=MAX_SKIP)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
        enabled: FromQuery[bool | None] = None,
    ) -> Page[JobOut]:
        principal.check_account(account_id)
        accounts, found = frozenset({account_id}), JobFilter(enabled=enabled)
        jobs = await list_jobs(pool, accounts, found, skip=skip, limit=limit)
        items, total = [job_out(j) for j in jobs], await count_jobs(pool, accounts, found)
        return Page(items=items, total=total, skip=skip, limit=limit)

    @get("/{job_id:str}", summary="Get a job", responses=error_responses(400, 404, *PROTECTED))
    async def read(
        self, job_id: FromPath[str], principal: NamedDependency[Principal], pool: NamedDependency[asyncpg.Pool]
    ) -> JobOut:
        return await load_job(pool, principal, job_id)

    @put(
        "/{job_id:str}",
        summary="Update any subset of a job's fields",
        responses=error_responses(*BODY, 404, 409, *PROTECTED),
    )
    async def update(
        self,
        job_id: FromPath[str],
        data: JSONBody[JobUpdate],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> JobOut:
        if not isinstance(data.schedule, UnsetType) and not isinstance(data.after, UnsetType):
            raise ValidationFailedError("give a schedule (cron) or after (a job to run after), not both", "schedule")
        schedule: Schedule | UnsetType = UNSET
        if not isinstance(data.schedule, UnsetType):
            schedule = CronSchedule(expression=data.schedule)
        elif not isinstance(data.after, UnsetType):
            schedule = after_of(data.after)
            await _room_after(pool, schedule, parse_id(job_id, JobNotFoundError, "job"))
        retry = UNSET if isinstance(data.retry_policy, UnsetType) else retry_policy_of(data.retry_policy)
        misfire = UNSET if isinstance(data.misfire_policy, UnsetType) else misfire_policy_of(data.misfire_policy)
        exclusions = UNSET if isinstance(data.exclusions, UnsetType) else exclusions_of(data.exclusions)
        flow = UNSET if isinstance(data.flow_control, UnsetType) else flow_control_of(data.flow_control)
        changes = JobChanges(
            name=data.name,
            schedule=schedule,
            type=data.type,
            timezone=data.timezone,
            enabled=data.enabled,
            retry=retry,
            timeout_seconds=data.timeout_seconds,
            misfire=misfire,
            overlap=data.overlap_policy,
            jitter_seconds=data.jitter_seconds,
            start_at=data.start_at,
            end_at=data.end_at,
            exclusions=exclusions,
            callback_url=data.callback_url,
            failure_callback_url=data.failure_callback_url,
            flow_control=flow,
        )
        appended = await commands.update_job(principal, parse_id(job_id, JobNotFoundError, "job"), changes)
        return await changed_job(pool, projection, appended)

    @delete(
        "/{job_id:str}", status_code=204, summary="Delete a job", responses=error_responses(400, 404, 409, *PROTECTED)
    )
    async def remove(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        projection: NamedDependency[ProjectionWait],
    ) -> None:
        appended = await commands.delete_job(principal, parse_id(job_id, JobNotFoundError, "job"))
        await projection.job_event(appended.sequence)

    @patch("/{job_id:str}/enable", summary="Enable a job", responses=error_responses(400, 404, 409, *PROTECTED))
    async def enable(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> JobOut:
        appended = await commands.set_enabled(principal, parse_id(job_id, JobNotFoundError, "job"), True)
        return await changed_job(pool, projection, appended)

    @patch("/{job_id:str}/disable", summary="Disable a job", responses=error_responses(400, 404, 409, *PROTECTED))
    async def disable(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> JobOut:
        appended = await commands.set_enabled(principal, parse_id(job_id, JobNotFoundError, "job"), False)
        return await changed_job(pool, projection, appended)

    @get(
        "/{job_id:str}/executions",
        summary="Execution history of a job, newest first",
        responses=error_responses(400, 404, *PROTECTED),
    )
    async def executions(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
        skip: Annotated[int, QueryParameter(ge=0, le=MAX_SKIP)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
        status: FromQuery[ExecutionStatus | None] = None,
    ) -> Page[ExecutionOut]:
        job = await load_job(pool, principal, job_id)
        executions = await list_executions(pool, job.id, skip=skip, limit=limit, status=status)
        items = [execution_out(e) for e in executions]
        total = await count_executions(pool, job.id, status=status)
        return Page(items=items, total=total, skip=skip, limit=limit)
