"""Creating and editing jobs through one form, and the live check of its schedule as it is typed."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from msgspec import UnsetType

from services.api.core.api_errors import ConflictError, ForbiddenError, SchedulerApiError, ValidationFailedError
from services.api.core.auth import Principal
from services.api.core.job_commands import Appended, JobCommands, WebhookChanges, WebhookDraft
from services.api.core.job_mapping import changes_from, checked_exclusions, checked_schedule, draft_from
from services.api.core.projection_wait import ProjectionWait
from services.api.core.schedule_words import describe_schedule, next_fire_times
from services.api.core.webhook_queries import WebhookRecord, job_webhooks
from services.api.ui.form_input import create_input, update_input, webhook_input
from services.api.ui.job_form import METHODS, FormError, JobForm, account_of, box_of, form_from, form_of, new_form
from services.api.ui.job_view import JobView, job_view
from services.api.ui.routes_jobs import owned_job
from services.api.ui.session import UI_PATH
from services.api.ui.views import fragment, page, see_other

PREVIEW_RUNS = 10


async def _form(request: Request[Any, Any, Any]) -> JobForm:
    return form_from(dict((await request.form()).items()))


async def _form_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    form: JobForm,
    *,
    job: JobView | None = None,
    webhooks: list[WebhookRecord] | None = None,
    status: int = 200,
) -> Template:
    response = page(
        request,
        "job_form.html",
        principal,
        "new" if job is None else "jobs",
        form=form,
        job=job,
        webhooks=webhooks or [],
        accounts=principal.accounts,
        account_options=[(str(a), str(a)) for a in sorted(principal.accounts or (), key=str)],
        method_options=[(m, m) for m in METHODS],
        preview=await asyncio.to_thread(_preview, form),
    )
    response.status_code = status
    return response


def _preview(form: JobForm) -> dict[str, Any]:
    """The schedule in words and its next runs, or why it cannot be used, as the API would say it (the rest of the
    form stood in for, so only the schedule's errors show)."""
    stand_in = {"name": form.get("name") or "preview", "action": "task", "task_name": "preview"}
    try:
        draft = draft_from(create_input(JobForm(values=form.values | stand_in)), datetime.now(UTC))
        schedule = checked_schedule(draft.schedule, draft.timezone)
        exclusions = checked_exclusions(draft.exclusions)
    except (FormError, ValidationFailedError) as exc:
        error = _form_error(exc)
        return {"error": error.message, "field": error.field}
    runs = next_fire_times(schedule, draft.timezone, datetime.now(UTC), PREVIEW_RUNS, exclusions=exclusions)
    return {"words": describe_schedule(schedule, draft.timezone), "runs": runs, "error": None}


def _form_error(exc: Exception) -> FormError:
    """An error of the form's own reading, or the API's (its message, on its field)."""
    if isinstance(exc, FormError):
        return exc
    if isinstance(exc, ValidationFailedError):
        return FormError.of(exc)
    if isinstance(exc, ForbiddenError):
        return FormError(exc.detail, "account_id")
    assert isinstance(exc, SchedulerApiError)
    return FormError(exc.detail)


async def _with_webhook(commands: JobCommands, form: JobForm) -> WebhookDraft | None:
    """The form's webhook, checked as adding it through the API would check it, before anything is written."""
    hook = webhook_input(form)
    if hook is not None:
        try:
            await commands.checked_webhook(hook.url, hook.headers, hook.body_template, hook.content_type)
        except ValidationFailedError as exc:
            raise FormError(exc.detail, box_of(exc.field, exc.schedule_kind) or "url") from None
    return hook


async def _save_webhook(
    commands: JobCommands, principal: Principal, job_id: UUID, webhooks: list[WebhookRecord], hook: WebhookDraft
) -> Appended | None:
    """The form edits the job's first webhook, or adds one to a job that has none."""
    if not webhooks:
        return await commands.add_webhook(principal, job_id=job_id, hook=hook)
    changes = WebhookChanges(
        url=hook.url,
        method=hook.method,
        headers=hook.headers,
        body_template=hook.body_template,
        content_type=hook.content_type,
    )
    return await commands.update_webhook(principal, job_id, webhooks[0].id, changes)


class JobFormController(Controller):
    path = "/"

    @get("/jobs/new")
    async def new(self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]) -> Template:
        return await _form_page(request, principal, new_form())

    @post("/jobs/new", status_code=303)
    async def create(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        projection: NamedDependency[ProjectionWait],
    ) -> Template | Redirect:
        form = await _form(request)
        try:
            account_id = account_of(form, principal.accounts)
            hook = await _with_webhook(commands, form)
            draft = draft_from(create_input(form), datetime.now(UTC))
            if hook is not None:
                # The webhook is written in the job's first event: the job never fires without it.
                draft = dataclasses.replace(draft, webhooks=(hook,))
            appended = await commands.create_job(principal, account_id=account_id, draft=draft)
        except (FormError, ValidationFailedError, ForbiddenError, ConflictError) as exc:
            form.fail(_form_error(exc))
            return await _form_page(request, principal, form, status=422)
        job_id = appended.event.job_id
        await projection.job_event(appended.sequence)
        return see_other(f"{UI_PATH}/jobs/{job_id}", "created")

    @get("/jobs/{job_id:str}/edit")
    async def edit(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Template:
        record = await owned_job(pool, principal, job_id)
        job = job_view(record)
        webhooks = await job_webhooks(pool, record.id)
        form = form_of(job, webhooks[0] if webhooks else None, record.account_id)
        return await _form_page(request, principal, form, job=job, webhooks=webhooks)

    @post("/jobs/{job_id:str}/edit", status_code=303)
    async def update(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> Template | Redirect:
        job = job_view(await owned_job(pool, principal, job_id))
        webhooks = await job_webhooks(pool, UUID(job.uuid))
        form = await _form(request)
        try:
            hook = await _with_webhook(commands, form)
            changes = changes_from(update_input(form, job), job, datetime.now(UTC))
            if not isinstance(changes.schedule, UnsetType):
                await asyncio.to_thread(
                    checked_schedule,
                    changes.schedule,
                    job.timezone if isinstance(changes.timezone, UnsetType) else changes.timezone,
                )
            # The webhook first: a task job turned into a webhook job is never left with neither.
            if hook is not None:
                await _save_webhook(commands, principal, UUID(job.uuid), webhooks, hook)
            appended = await commands.update_job(principal, UUID(job.uuid), changes)
        except (FormError, ValidationFailedError, ForbiddenError, ConflictError) as exc:
            form.fail(_form_error(exc))
            return await _form_page(request, principal, form, job=job, webhooks=webhooks, status=422)
        await projection.job_event(appended.sequence)
        return see_other(f"{UI_PATH}/jobs/{job_id}", "saved")

    @post("/schedule/preview")
    async def preview(self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]) -> Template:
        """The live check: the schedule the form holds, in words with its next runs, or the API's error for it."""
        return fragment(
            request, "_schedule_preview.html", preview=await asyncio.to_thread(_preview, await _form(request))
        )
