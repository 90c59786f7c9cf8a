"""Job routes of the Scheduler service API."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import UNSET, UnsetType

from services.api.core.auth import Principal
from services.api.core.projection_wait import ProjectionWait
from services.api.core.read_models import (
    get_job,
    list_executions,
    list_jobs,
    misfire_policy_body,
    misfire_policy_of,
    retry_policy_body,
    schedule_text,
)
from services.api.domain_errors import JobNotFoundError
from services.api.http.openapi_docs import BEARER, BODY, PROTECTED, error_responses
from services.api.job_commands import Appended, JobChanges, JobCommands, JobDraft, WebhookDraft
from services.api.rest.schemas import (
    ExecutionOut,
    ExecutionStatus,
    JobCreate,
    JobOut,
    JobUpdate,
    MisfirePolicyBody,
    NewWebhook,
    Page,
    RetryPolicyBody,
    WebhookCreate,
    WebhookOut,
)
from shared.contracts.jobs import JobEvent, RetryPolicy, WebhookSpec
from shared.contracts.schedules import CronSchedule

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
# Deep offsets cost a scan of everything skipped; beyond this, narrow the query instead.
MAX_SKIP = 1_000_000


def parse_id(raw: str, error: type[Exception], what: str) -> UUID:
    """Path ids are UUIDs; anything else cannot name an existing resource."""
    try:
        return UUID(raw)
    except ValueError:
        raise error(f"{what} {raw!r} not found") from None


def job_from_event(event: JobEvent, last_run_at: datetime | None = None) -> JobOut:
    job = event.job
    return JobOut(
        id=job.id,
        account_id=job.account_id,
        name=job.name,
        schedule=schedule_text(job.schedule),
        type=job.type,
        timezone=job.timezone,
        enabled=job.enabled,
        last_run_at=last_run_at,
        next_run_at=event.next_run_at,
        created_at=job.created_at,
        updated_at=job.updated_at,
        retry_policy=retry_policy_body(job.retry),
        timeout_seconds=job.timeout_seconds,
        misfire_policy=misfire_policy_body(job.misfire),
        overlap_policy=job.overlap,
        jitter_seconds=job.jitter_seconds,
        start_at=job.start_at,
        end_at=job.end_at,
    )


def webhook_draft(body: NewWebhook | WebhookCreate) -> WebhookDraft:
    """A webhook body of either route (with a new job, or POST /webhooks) as the commands take it."""
    return WebhookDraft(
        url=body.url,
        method=body.method,
        headers=body.headers or {},
        query_params=body.query_params,
        body_template=body.body_template,
        content_type=body.content_type,
    )


def webhook_out(job_id: UUID, spec: WebhookSpec) -> WebhookOut:
    return WebhookOut(
        id=spec.id,
        job_id=job_id,
        url=spec.url,
        method=spec.method,
        headers=spec.headers,
        query_params=spec.query_params,
        body_template=spec.body_template,
        content_type=spec.content_type,
        created_at=spec.created_at,
        updated_at=spec.updated_at,
        enabled=spec.enabled,
        disabled_reason=spec.disabled_reason,
    )


def retry_policy_of(body: RetryPolicyBody) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=body.max_attempts,
        base_delay_seconds=body.backoff_seconds,
        backoff=body.backoff_type,
        jitter=body.jitter,
        max_delay_seconds=body.max_backoff_seconds,
    )


async def load_job(pool: asyncpg.Pool, principal: Principal, raw_id: str) -> JobOut:
    job_id = parse_id(raw_id, JobNotFoundError, "job")
    job = await get_job(pool, job_id)
    if job is None:
        raise JobNotFoundError(f"job {job_id} not found")
    principal.check_account(job.account_id)
    return job


async def changed_job(pool: asyncpg.Pool, projection: ProjectionWait, appended: Appended) -> JobOut:
    """The job as a command left it, once the read model has it (for last_run_at, which only it knows).

    The change is already in the log: if Postgres cannot answer now, the response still says what was done.
    """
    await projection.job_event(appended.sequence)
    try:
        current = await get_job(pool, appended.event.job_id)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.warning("job %s changed, but its last run time cannot be read: %s", appended.event.job_id, exc)
        current = None
    if current is not None and current.updated_at == appended.event.job.updated_at:
        return current  # the read model has this version, with the ticker's latest next_run_at
    return job_from_event(appended.event, current.last_run_at if current else None)


class JobController(Controller):
    path = "/api/jobs"
    tags = ["jobs"]
    security = BEARER

    @post("/", status_code=201, summary="Create a job", responses=error_responses(*BODY, *PROTECTED))
    async def create(
        self,
        data: JSONBody[JobCreate],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        projection: NamedDependency[ProjectionWait],
    ) -> JobOut:
        draft = JobDraft(
            name=data.name,
            schedule=CronSchedule(expression=data.schedule),
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
            webhooks=tuple(webhook_draft(w) for w in data.webhooks or ()),
        )
        appended = await commands.create_job(principal, account_id=data.account_id, draft=draft)
        await projection.job_event(appended.sequence)
        job = job_from_event(appended.event)
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
        items, total = await list_jobs(pool, account_id, skip=skip, limit=limit, enabled=enabled)
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
        schedule = UNSET if isinstance(data.schedule, UnsetType) else CronSchedule(expression=data.schedule)
        retry = UNSET if isinstance(data.retry_policy, UnsetType) else retry_policy_of(data.retry_policy)
        misfire = UNSET if isinstance(data.misfire_policy, UnsetType) else misfire_policy_of(data.misfire_policy)
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
        items, total = await list_executions(pool, job.id, skip=skip, limit=limit, status=status)
        return Page(items=items, total=total, skip=skip, limit=limit)
