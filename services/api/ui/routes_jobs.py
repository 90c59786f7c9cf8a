"""Jobs: the searchable list, a job's page, and the actions on it (run now, pause, resume, delete; backfills are
routes_backfills.py's)."""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import asyncpg
import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from services.api.core.api_errors import JobNotFoundError, ValidationFailedError
from services.api.core.auth import Principal
from services.api.core.backfills import list_backfills
from services.api.core.ids import parse_id
from services.api.core.job_commands import JobCommands
from services.api.core.job_queries import JobFilter, JobRecord, job_by_id, jobs_after
from services.api.core.projection_wait import ProjectionWait
from services.api.core.run_now import RunNow
from services.api.core.schedule_words import describe_schedule, next_fire_times
from services.api.core.webhook_queries import job_webhooks
from services.api.ui.backfill_form import LIMITS, BackfillForm, new_backfill_form
from services.api.ui.job_form import KINDS
from services.api.ui.job_view import job_view
from services.api.ui.queries import ExecutionFilter, search_executions, search_jobs
from services.api.ui.session import UI_PATH
from services.api.ui.views import fragment, page, see_other, wants_fragment
from shared.contracts.schedules import AfterSchedule
from shared.schedule.wallclock import zone

PAGE_SIZE = 25
MAX_PAGE = 4000
NEXT_RUNS = 10
RECENT_EXECUTIONS = 20
BACKFILLS_SHOWN = 20


def job_filter(request: Request[Any, Any, Any]) -> tuple[JobFilter, int]:
    query = request.query_params
    kind = query.get("type") or None
    if kind is not None and kind not in KINDS:
        raise ValidationFailedError(f"type must be one of {', '.join(KINDS)}", field="type")
    state = query.get("state") or ""
    if state not in ("", "enabled", "paused"):
        raise ValidationFailedError("state must be enabled or paused", field="state")
    try:
        number = int(query.get("page") or 1)
    except ValueError:
        raise ValidationFailedError("page must be a number", field="page") from None
    if not 1 <= number <= MAX_PAGE:
        raise ValidationFailedError(f"page must be between 1 and {MAX_PAGE}", field="page")
    text = (query.get("q") or "").strip()[:200]
    tags = tuple(t.strip() for t in (query.get("tag") or "").split(",") if t.strip())
    enabled = {"enabled": True, "paused": False}.get(state)
    return JobFilter(text=text, tags=tags, kind=kind, enabled=enabled), number


async def owned_job(pool: asyncpg.Pool, principal: Principal, raw_id: str) -> JobRecord:
    """The job, with its status, if the caller may see it (the API's rule: 404 if absent, 403 if not theirs)."""
    job_id = parse_id(raw_id, JobNotFoundError, "job")
    found = await job_by_id(pool, job_id, status=True)
    if found is None:
        raise JobNotFoundError(f"job {job_id} not found")
    principal.check_account(found.account_id)
    return found


async def _recent_executions(pool: asyncpg.Pool, job_id: UUID) -> list[asyncpg.Record]:
    """The job's newest executions (its access already checked)."""
    found = ExecutionFilter(job_id=job_id)
    return (await search_executions(pool, None, found, limit=RECENT_EXECUTIONS))[:RECENT_EXECUTIONS]


async def _set_enabled(
    commands: JobCommands, projection: ProjectionWait, principal: Principal, job_id: str, *, enabled: bool
) -> Redirect:
    appended = await commands.set_enabled(principal, parse_id(job_id, JobNotFoundError, "job"), enabled)
    await projection.job_event(appended.sequence)
    return see_other(f"{UI_PATH}/jobs/{job_id}", "resumed" if enabled else "paused")


async def _chain(pool: asyncpg.Pool, record: JobRecord) -> dict[str, Any]:
    """The job's place in a chain: the job it runs after (None when that one was deleted) and those after it."""
    link = record.schedule
    upstream = await job_by_id(pool, link.job_id) if isinstance(link, AfterSchedule) else None
    return {
        "after": link if isinstance(link, AfterSchedule) else None,
        "upstream": upstream,
        "downstream": await jobs_after(pool, record.id),
    }


async def job_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    pool: asyncpg.Pool,
    record: JobRecord,
    *,
    backfill_form: BackfillForm | None = None,
    status: int = 200,
) -> Template:
    """The job's page (its access already checked); a backfill form given is shown as typed, with its errors."""
    job, account_id, schedule = job_view(record), record.account_id, record.schedule
    now = datetime.now(UTC)
    backfills, backfills_total = await list_backfills(pool, record.id, skip=0, limit=BACKFILLS_SHOWN)
    context = {
        "job": job,
        "account_id": account_id,
        "words": describe_schedule(schedule, job.timezone),
        "fire_times": await asyncio.to_thread(
            functools.partial(
                next_fire_times,
                schedule,
                job.timezone,
                now,
                NEXT_RUNS,
                start_at=job.start_at,
                end_at=job.end_at,
                exclusions=job.exclusions,
            )
        )
        if job.is_active
        else [],
        "zone_now": now.astimezone(zone(job.timezone)),
        "webhooks": await job_webhooks(pool, record.id),
        "executions": await _recent_executions(pool, record.id),
        "metadata": msgspec.json.encode(job.metadata).decode() if job.metadata else None,
        "backfills": backfills,
        "backfills_total": backfills_total,
        "backfill_form": backfill_form or new_backfill_form(now),
        "backfill_limits": LIMITS,
        **await _chain(pool, record),
    }
    response = page(request, "job.html", principal, "jobs", **context)
    response.status_code = status
    return response


class JobsController(Controller):
    path = "/jobs"

    @get("/")
    async def index(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Template:
        found, number = job_filter(request)
        rows, total = await search_jobs(pool, principal.accounts, found, skip=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
        query = {k: v for k, v in request.query_params.items() if k != "page" and v}
        context = {
            "rows": rows,
            "words": {job.uuid: describe_schedule(job.schedule, job.timezone) for job, _ in rows},
            "total": total,
            "number": number,
            "pages": pages,
            "query": query,
            "query_string": urlencode(query),
            "kinds": KINDS,
        }
        if wants_fragment(request):
            return fragment(request, "_jobs_rows.html", **context)
        return page(request, "jobs.html", principal, "jobs", **context)

    @get("/{job_id:str}")
    async def show(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Template:
        return await job_page(request, principal, pool, await owned_job(pool, principal, job_id))

    @get("/{job_id:str}/executions")
    async def executions(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Template:
        """The job page's recent executions, refreshed live."""
        job = await owned_job(pool, principal, job_id)
        return fragment(request, "_executions_rows.html", rows=await _recent_executions(pool, job.id), show_job=False)

    @post("/{job_id:str}/run", status_code=303)
    async def run(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        run_now: NamedDependency[RunNow],
        projection: NamedDependency[ProjectionWait],
    ) -> Redirect:
        _, sequence = await run_now.run(principal, parse_id(job_id, JobNotFoundError, "job"))
        await projection.execution_event(sequence)
        return see_other(f"{UI_PATH}/jobs/{job_id}", "ran")

    @post("/{job_id:str}/pause", status_code=303)
    async def pause(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        projection: NamedDependency[ProjectionWait],
    ) -> Redirect:
        return await _set_enabled(commands, projection, principal, job_id, enabled=False)

    @post("/{job_id:str}/resume", status_code=303)
    async def resume(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        projection: NamedDependency[ProjectionWait],
    ) -> Redirect:
        return await _set_enabled(commands, projection, principal, job_id, enabled=True)

    @get("/{job_id:str}/delete")
    async def confirm_delete(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Template:
        job = job_view(await owned_job(pool, principal, job_id))
        return page(request, "confirm_delete.html", principal, "jobs", job=job)

    @post("/{job_id:str}/delete", status_code=303)
    async def delete(
        self,
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        projection: NamedDependency[ProjectionWait],
    ) -> Redirect:
        appended = await commands.delete_job(principal, parse_id(job_id, JobNotFoundError, "job"))
        await projection.job_event(appended.sequence)
        return see_other(f"{UI_PATH}/jobs", "deleted")
