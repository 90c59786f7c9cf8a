"""Who may act on which NEXUS job: job numbers in paths, the caller narrowed to the account X-Account-Id names, and
the account a new job goes to."""

from __future__ import annotations

import dataclasses
from uuid import UUID

import asyncpg
from litestar import Request
from litestar.datastructures import State

from services.api.core.api_errors import ForbiddenError, JobNotFoundError, ValidationFailedError
from services.api.core.auth import Principal
from services.api.core.job_queries import JobRecord, job_by_id, job_by_number, job_ref
from services.api.http.dependencies import bearer_principal, provide_principal
from services.api.nexus.read_models import nexus_job
from services.api.nexus.schemas import NexusJob
from shared.contracts.schedules import kind_of


def job_number(raw: str) -> int:
    try:
        number = int(raw)
    except ValueError:
        raise ValidationFailedError("value is not a valid integer", field="job_id", location="path") from None
    if not 1 <= number < 2**63:
        raise JobNotFoundError(f"job {number} not found")
    return number


@bearer_principal
async def provide_nexus_principal(request: Request[object, object, State]) -> Principal:
    """The caller, narrowed to the account X-Account-Id names (403 when the token does not hold it), on every route:
    lists and counts show that account only, and a job of another account is refused."""
    principal = await provide_principal(request)
    header = request.headers.get("x-account-id")
    if header is None:
        return principal
    try:
        account = UUID(header)
    except ValueError:
        raise ValidationFailedError("not a valid UUID", field="X-Account-Id", location="header") from None
    principal.check_account(account)
    return dataclasses.replace(principal, accounts=frozenset({account}))


def account_of(principal: Principal, header: str | None) -> UUID:
    """The account of a new job: the token's only account, or the one X-Account-Id names (the principal is
    already narrowed to it)."""
    if header is not None:
        return UUID(header)
    if principal.accounts is not None and len(principal.accounts) == 1:
        return next(iter(principal.accounts))
    if principal.accounts == frozenset():
        raise ForbiddenError("the token gives access to no account")
    raise ValidationFailedError(
        "the token may act on several accounts: name one in X-Account-Id", field="X-Account-Id", location="header"
    )


async def job_id_of(pool: asyncpg.Pool, principal: Principal, raw_id: str) -> UUID:
    """The id of the job numbered `raw_id`, if the caller may act on it (without reading the whole job)."""
    found = await job_ref(pool, job_number(raw_id))
    if found is None or found[2] == "after":  # a chained job has no place in this surface's document
        raise JobNotFoundError(f"job {raw_id} not found")
    job_id, account_id, _ = found
    principal.check_account(account_id)
    return job_id


async def job_of(pool: asyncpg.Pool, principal: Principal, raw_id: str) -> JobRecord:
    """The job numbered `raw_id`, with its status, if the caller may see it."""
    found = await job_by_number(pool, job_number(raw_id), status=True)
    if found is None or kind_of(found.schedule) == "after":  # a chained job has no place in this surface's document
        raise JobNotFoundError(f"job {raw_id} not found")
    principal.check_account(found.account_id)
    return found


async def nexus_job_of(pool: asyncpg.Pool, principal: Principal, raw_id: str) -> NexusJob:
    """The job numbered `raw_id`, as this surface shows it, if the caller may see it."""
    return nexus_job(await job_of(pool, principal, raw_id))


async def fresh_job(pool: asyncpg.Pool, job_id: UUID) -> NexusJob:
    """The job as the read model has it now (after a change this route made and waited for)."""
    found = await job_by_id(pool, job_id, status=True)
    if found is None:
        raise JobNotFoundError(f"job {job_id} not found")
    return nexus_job(found)
