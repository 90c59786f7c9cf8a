"""Webhook routes of the Scheduler service API."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from services.api.auth import Principal
from services.api.dependencies import Resources, await_projection
from services.api.domain_errors import WebhookNotFoundError
from services.api.read_models import get_webhook
from services.api.routes_jobs import parse_id
from services.api.schemas import WebhookCreate, WebhookOut
from shared.contracts.jobs import WebhookAdded


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]

    @post("/", status_code=201, summary="Attach a webhook to a job")
    async def create(
        self, data: JSONBody[WebhookCreate], principal: NamedDependency[Principal], res: NamedDependency[Resources]
    ) -> WebhookOut:
        assert res.commands is not None
        appended = await res.commands.add_webhook(
            principal,
            job_id=data.job_id,
            url=data.url,
            method=data.method,
            headers=data.headers or {},
            query_params=data.query_params,
            body_template=data.body_template,
        )
        await await_projection(res, appended.sequence)
        event = appended.event
        assert isinstance(event, WebhookAdded)
        spec = next(w for w in event.job.webhooks if w.id == event.webhook_id)
        return WebhookOut(
            id=spec.id,
            job_id=event.job_id,
            url=spec.url,
            method=spec.method,
            headers=spec.headers,
            query_params=spec.query_params,
            body_template=spec.body_template,
            created_at=spec.created_at,
            updated_at=spec.updated_at,
        )

    @get("/{webhook_id:str}", summary="Get a webhook")
    async def read(
        self, webhook_id: FromPath[str], principal: NamedDependency[Principal], res: NamedDependency[Resources]
    ) -> WebhookOut:
        wid = parse_id(webhook_id, WebhookNotFoundError, "webhook")
        assert res.pool is not None
        found = await get_webhook(res.pool, wid)
        if found is None:
            raise WebhookNotFoundError(f"webhook {wid} not found")
        webhook, account_id = found
        principal.check_account(account_id)
        return webhook
