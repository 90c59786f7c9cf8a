"""A job's backfills on its page: the list (refreshed live), starting one from the page's form, and cancelling a
running one. The checks and limits are the core's (services/api/core/backfills.py), as through the API."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from services.api.core.api_errors import BackfillNotFoundError, ConflictError, ValidationFailedError
from services.api.core.auth import Principal
from services.api.core.backfills import Backfills, backfill_by_id, list_backfills
from services.api.core.ids import parse_id
from services.api.core.projection_wait import ProjectionWait
from services.api.ui.backfill_form import backfill_form_from, backfill_input
from services.api.ui.routes_jobs import BACKFILLS_SHOWN, job_page, owned_job
from services.api.ui.session import UI_PATH
from services.api.ui.views import fragment, see_other


class BackfillsController(Controller):
    path = "/jobs/{job_id:str}/backfills"

    @get("/")
    async def rows(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Template:
        """The job page's backfills, refreshed live."""
        job = await owned_job(pool, principal, job_id)
        backfills, total = await list_backfills(pool, job.id, skip=0, limit=BACKFILLS_SHOWN)
        return fragment(request, "_backfills_rows.html", backfills=backfills, backfills_total=total)

    @post("/", status_code=303)
    async def start(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
        backfills: NamedDependency[Backfills],
        projection: NamedDependency[ProjectionWait],
    ) -> Template | Redirect:
        """A refused backfill (a bad range, too many running) is the job page again, the form as typed with the
        core's message on its box."""
        job = await owned_job(pool, principal, job_id)
        form = backfill_form_from(await request.form())
        try:
            given = backfill_input(form)
            started = await backfills.start(
                principal, job.id, start=given.start, end=given.end, per_second=given.per_second
            )
        except ValidationFailedError as exc:
            form.fail(exc.detail, exc.field)
            return await job_page(request, principal, pool, job, backfill_form=form, status=422)
        except ConflictError as exc:
            form.fail(exc.detail, None)
            return await job_page(request, principal, pool, job, backfill_form=form, status=409)
        await projection.execution_event(started.sequence)
        return see_other(f"{UI_PATH}/jobs/{job.id}", "backfill-started")

    @post("/{backfill_id:str}/cancel", status_code=303)
    async def cancel(
        self,
        job_id: FromPath[str],
        backfill_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
        backfills: NamedDependency[Backfills],
        projection: NamedDependency[ProjectionWait],
    ) -> Redirect:
        """One that has ended is the dashboard's error page (409), as any refused action."""
        job = await owned_job(pool, principal, job_id)
        record = await backfill_by_id(pool, job.id, parse_id(backfill_id, BackfillNotFoundError, "backfill"))
        if record is None:
            raise BackfillNotFoundError(f"backfill {backfill_id} of job {job.id} not found")
        await projection.execution_event(await backfills.cancel(principal, record))
        return see_other(f"{UI_PATH}/jobs/{job.id}", "backfill-cancelled")
