"""Executions: the filtered history, one execution's page, and the dead letters with their re-drive."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import asyncpg
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from services.api.core.api_errors import ExecutionNotFoundError, ValidationFailedError
from services.api.core.auth import Principal
from services.api.core.dead_letters import MAX_REDRIVE, Redriver, Selection
from services.api.core.ids import parse_id
from services.api.core.projection_wait import ProjectionWait
from services.api.ui.queries import OUTCOMES, ExecutionFilter, attempts, execution, search_executions
from services.api.ui.views import fragment, page, time_param, uuid_param, wants_fragment

PAGE_SIZE = 50


def _cursor(raw: str | None) -> tuple[datetime, UUID] | None:
    if not raw:
        return None
    moment, _, execution_id = raw.partition("_")
    when = time_param(moment, "before")
    key = uuid_param(execution_id, "before")
    if when is None or key is None:
        raise ValidationFailedError("before must be a cursor from this list", field="before")
    return when, key


def execution_filter(request: Request[Any, Any, Any], *, dead_letters: bool = False) -> ExecutionFilter:
    query = request.query_params
    statuses = tuple(s for s in query.getall("status", []) if s)
    unknown = [s for s in statuses if s not in OUTCOMES]
    if unknown:
        raise ValidationFailedError(f"status must be among {', '.join(OUTCOMES)}, not {unknown[0]!r}", field="status")
    return ExecutionFilter(
        statuses=statuses,
        job_id=uuid_param(query.get("job"), "job"),
        since=time_param(query.get("since"), "since"),
        until=time_param(query.get("until"), "until"),
        before=_cursor(query.get("before")),
        dead_letters=dead_letters,
    )


async def _listing(
    request: Request[Any, Any, Any], principal: Principal, pool: asyncpg.Pool, *, dead_letters: bool
) -> dict[str, Any]:
    found = execution_filter(request, dead_letters=dead_letters)
    rows = await search_executions(pool, principal.accounts, found, limit=PAGE_SIZE)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "before" and v]
    following = None
    if more:
        last = rows[-1]
        following = urlencode([*query, ("before", f"{last[found.time_column].isoformat()}_{last['id']}")])
    return {
        "rows": rows,
        "following": following,
        "first_page": found.before is None,
        "query_string": urlencode(query),
        "chosen": set(found.statuses),
        "statuses": OUTCOMES,
        "filters": {k: request.query_params.get(k, "") for k in ("job", "since", "until")},
        "show_job": True,
    }


class ExecutionsController(Controller):
    path = "/"

    @get("/executions")
    async def index(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Template:
        context = await _listing(request, principal, pool, dead_letters=False)
        if wants_fragment(request):
            return fragment(request, "_executions_list.html", **context)
        return page(request, "executions.html", principal, "executions", **context)

    @get("/executions/{execution_id:str}")
    async def show(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Template:
        key = parse_id(execution_id, ExecutionNotFoundError, "execution")
        row = await execution(pool, key)
        if row is None:
            raise ExecutionNotFoundError(f"execution {key} not found")
        principal.check_account(row["account_id"])
        return page(
            request,
            "execution.html",
            principal,
            "executions",
            e=row,
            attempts=await attempts(pool, row["occurrence_id"]),
        )

    @get("/dead-letters")
    async def dead_letters(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Template:
        context = await _listing(request, principal, pool, dead_letters=True)
        if wants_fragment(request):
            return fragment(request, "_dead_letter_rows.html", **context)
        return page(request, "dead_letters.html", principal, "dead-letters", report=None, **context)

    @post("/dead-letters/redrive", status_code=200)
    async def redrive(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
        redriver: NamedDependency[Redriver],
        projection: NamedDependency[ProjectionWait],
    ) -> Template:
        """Re-drive the ticked dead letters, or every one the filter shows (up to the API's limit per call)."""
        form = await request.form()
        if form.get("all") == "yes":
            found = execution_filter(request, dead_letters=True)
            if found.job_id is None and found.since is None:
                # As the API: a re-drive names what it re-drives (for a service-role token, "all" is every account).
                raise ValidationFailedError("to re-drive all, filter by a job or a time first", field="all")
            if found.until is not None:
                raise ValidationFailedError(
                    "a re-drive of all takes no end time: tick the ones to re-drive", field="all"
                )
            selection = Selection(job_id=found.job_id, since=found.since)
        else:
            ids = [uuid_param(v, "execution") for v in form.getall("execution_id", [])]
            chosen = tuple(i for i in ids if i is not None)
            if not chosen:
                raise ValidationFailedError("tick at least one dead letter to re-drive", field="execution_id")
            if len(chosen) > MAX_REDRIVE:
                raise ValidationFailedError(f"at most {MAX_REDRIVE} at once", field="execution_id")
            selection = Selection(execution_ids=chosen)
        report = await redriver.redrive(principal.accounts, selection)
        if report.last_sequence:
            await projection.execution_event(report.last_sequence)
        context = await _listing(request, principal, pool, dead_letters=True)
        return page(request, "dead_letters.html", principal, "dead-letters", report=report, **context)
