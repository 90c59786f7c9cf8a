"""Dead letters on the Scheduler-service surface: list them, and re-drive one, all of a job, or all since a time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter

from services.api.core.api_errors import ValidationFailedError
from services.api.core.auth import Principal
from services.api.core.dead_letters import MAX_REDRIVE, Redriver, Selection, check_access, list_dead_letters
from services.api.core.projection_wait import ProjectionWait
from services.api.http.openapi_docs import BEARER, BODY, PROTECTED, error_responses
from services.api.rest.mapping import execution_out
from services.api.rest.routes_jobs import MAX_LIMIT, MAX_SKIP
from services.api.rest.schemas import ExecutionOut, Page


class RedriveRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which dead letters to re-drive: the given ones, all of a job, all since a time, or a combination."""

    execution_ids: Annotated[list[UUID], msgspec.Meta(max_length=MAX_REDRIVE)] | None = None
    job_id: UUID | None = None
    since: datetime | None = None
    account_id: UUID | None = None


class Redriven(msgspec.Struct, kw_only=True):
    execution_id: UUID
    new_execution_id: UUID


class Skipped(msgspec.Struct, kw_only=True):
    execution_id: UUID
    reason: str


class RedriveResult(msgspec.Struct, kw_only=True):
    """Each re-driven dead letter with its new attempt; those that could not be, with why (a named execution that is
    no dead letter too: "not found", "already re-driven", ...); how many are left beyond this call's limit."""

    redriven: list[Redriven]
    skipped: list[Skipped]
    remaining: int


def _scope(principal: Principal, account_id: UUID | None) -> frozenset[UUID] | None:
    if account_id is None:
        return principal.accounts
    principal.check_account(account_id)
    return frozenset({account_id})


class DeadLetterController(Controller):
    path = "/api/dead-letters"
    tags = ["dead letters"]
    security = BEARER

    @get("/", summary="List dead letters, newest first", responses=error_responses(400, *PROTECTED))
    async def index(
        self,
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
        account_id: FromQuery[UUID | None] = None,
        job_id: FromQuery[UUID | None] = None,
        since: FromQuery[datetime | None] = None,
        skip: Annotated[int, QueryParameter(ge=0, le=MAX_SKIP)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
    ) -> Page[ExecutionOut]:
        selection = Selection(job_id=job_id, since=since)
        found, total = await list_dead_letters(pool, _scope(principal, account_id), selection, skip=skip, limit=limit)
        return Page(items=[execution_out(e) for e in found], total=total, skip=skip, limit=limit)

    @post(
        "/redrive",
        status_code=202,
        summary="Re-drive dead letters: one more attempt of each occurrence",
        responses=error_responses(*BODY, *PROTECTED),
    )
    async def redrive(
        self,
        data: JSONBody[RedriveRequest],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
        redriver: NamedDependency[Redriver],
        projection: NamedDependency[ProjectionWait],
    ) -> RedriveResult:
        if not data.execution_ids and data.job_id is None and data.since is None:
            raise ValidationFailedError("name execution_ids, a job_id or a since time", field="execution_ids")
        selection = Selection(execution_ids=tuple(data.execution_ids or ()), job_id=data.job_id, since=data.since)
        await check_access(pool, principal, selection)
        report = await redriver.redrive(_scope(principal, data.account_id), selection)
        if report.last_sequence:
            await projection.execution_event(report.last_sequence)
        return RedriveResult(
            redriven=[Redriven(execution_id=old, new_execution_id=new) for old, new in report.redriven],
            skipped=[Skipped(execution_id=e, reason=r) for e, r in report.skipped],
            remaining=report.remaining,
        )
