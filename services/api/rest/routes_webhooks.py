"""Webhook routes of the Scheduler service API."""

from __future__ import annotations

import asyncpg
from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from services.api.core.api_errors import WebhookNotFoundError
from services.api.core.auth import Principal
from services.api.core.ids import parse_id
from services.api.core.job_commands import Appended, JobCommands, WebhookChanges
from services.api.core.projection_wait import ProjectionWait
from services.api.core.webhook_queries import webhook_by_id
from services.api.http.openapi_docs import BEARER, BODY, PROTECTED, error_responses
from services.api.rest.mapping import webhook_draft, webhook_out
from services.api.rest.schemas import WebhookCreate, WebhookOut, WebhookUpdate
from shared.contracts.jobs import WebhookAdded, WebhookUpdated


def webhook_from_event(appended: Appended) -> WebhookOut:
    event = appended.event
    assert isinstance(event, (WebhookAdded, WebhookUpdated))
    spec = next(w for w in event.job.webhooks if w.id == event.webhook_id)
    return webhook_out(event.job_id, spec)


async def find_webhook(pool: asyncpg.Pool, principal: Principal, raw_id: str) -> WebhookOut:
    """The webhook, if it exists and the caller may access its job's account."""
    webhook_id = parse_id(raw_id, WebhookNotFoundError, "webhook")
    found = await webhook_by_id(pool, webhook_id)
    if found is None:
        raise WebhookNotFoundError(f"webhook {webhook_id} not found")
    principal.check_account(found.account_id)
    return webhook_out(found.job_id, found)


WEBHOOK_ERRORS = error_responses(400, 404, *PROTECTED, not_found="WEBHOOK_NOT_FOUND")
WEBHOOK_CHANGE_ERRORS = error_responses(*BODY, 404, 409, *PROTECTED, not_found="WEBHOOK_NOT_FOUND")


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]
    security = BEARER

    @post(
        "/",
        status_code=201,
        summary="Attach a webhook to a job",
        responses=error_responses(*BODY, 404, 409, *PROTECTED),
    )
    async def create(
        self,
        data: JSONBody[WebhookCreate],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        projection: NamedDependency[ProjectionWait],
    ) -> WebhookOut:
        appended = await commands.add_webhook(principal, job_id=data.job_id, hook=webhook_draft(data))
        await projection.job_event(appended.sequence)
        return webhook_from_event(appended)

    @get("/{webhook_id:str}", summary="Get a webhook", responses=WEBHOOK_ERRORS)
    async def read(
        self, webhook_id: FromPath[str], principal: NamedDependency[Principal], pool: NamedDependency[asyncpg.Pool]
    ) -> WebhookOut:
        return await find_webhook(pool, principal, webhook_id)

    @put(
        "/{webhook_id:str}",
        summary="Update any subset of a webhook's fields",
        responses=WEBHOOK_CHANGE_ERRORS,
    )
    async def update(
        self,
        webhook_id: FromPath[str],
        data: JSONBody[WebhookUpdate],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> WebhookOut:
        current = await find_webhook(pool, principal, webhook_id)
        changes = WebhookChanges(
            url=data.url,
            method=data.method,
            headers=data.headers,
            query_params=data.query_params,
            body_template=data.body_template,
            content_type=data.content_type,
            enabled=data.enabled,
        )
        appended = await commands.update_webhook(principal, current.job_id, current.id, changes)
        await projection.job_event(appended.sequence)
        if isinstance(appended.event, WebhookUpdated) and appended.event.webhook_id == current.id:
            return webhook_from_event(appended)
        return current  # nothing changed

    @delete(
        "/{webhook_id:str}",
        status_code=204,
        summary="Delete a webhook",
        responses=error_responses(400, 404, 409, *PROTECTED),
    )
    async def remove(
        self,
        webhook_id: FromPath[str],
        principal: NamedDependency[Principal],
        commands: NamedDependency[JobCommands],
        pool: NamedDependency[asyncpg.Pool],
        projection: NamedDependency[ProjectionWait],
    ) -> None:
        current = await find_webhook(pool, principal, webhook_id)
        appended = await commands.remove_webhook(principal, current.job_id, current.id)
        await projection.job_event(appended.sequence)
