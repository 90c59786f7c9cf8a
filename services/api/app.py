"""Wiring of the api: create_app(settings) builds the Litestar application; connections open in its lifespan."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from services.api.auth import Authenticator
from services.api.dependencies import Resources, provide_principal, provide_resources
from services.api.error_responses import exception_handlers
from services.api.job_commands import JobCommands
from services.api.projection_wait import ProjectionWatcher
from services.api.routes_health import health
from services.api.routes_jobs import JobController
from services.api.routes_webhooks import WebhookController
from shared.bus.connection import connect
from shared.bus.job_store import NatsJobEventStore
from shared.bus.streams import ensure_streams
from shared.contracts.subjects import Names
from shared.db.pool import create_pool
from shared.settings import Settings

log = logging.getLogger(__name__)


def check_open_mode_binding(settings: Settings) -> None:
    """Open mode (no tokens) is for local clients only: refuse to listen beyond loopback."""
    if settings.auth_mode != "open":
        return
    host = settings.api_host
    loopback = host == "localhost"
    with suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if not loopback:
        raise ValueError(f"SCHEDULER_AUTH_MODE=open only listens on loopback, not {host!r}")
    log.warning("AUTH MODE IS OPEN: no tokens are checked; every caller acts as the default account")


def create_app(settings: Settings) -> Litestar:
    check_open_mode_binding(settings)
    names = Names(settings.namespace)
    resources = Resources(settings=settings, names=names, authenticator=Authenticator(settings))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        resources.nc = await connect(settings.nats_url, "api")
        js = resources.nc.jetstream()
        await ensure_streams(js, settings)
        resources.pool = await create_pool(settings.database_url)
        resources.watcher = ProjectionWatcher(settings.database_url, names.projection_channel)
        await resources.watcher.start()
        resources.commands = JobCommands(NatsJobEventStore(js, names))
        try:
            yield
        finally:
            await resources.watcher.close()
            await resources.pool.close()
            await resources.nc.drain()

    return Litestar(
        route_handlers=[health, JobController, WebhookController],
        dependencies={"principal": Provide(provide_principal), "res": Provide(provide_resources)},
        exception_handlers=exception_handlers(),
        lifespan=[lifespan],
        state=State({"resources": resources}),
        openapi_config=OpenAPIConfig(
            title="Scheduler",
            version="0.1.0",
            path="/",
            render_plugins=[SwaggerRenderPlugin(path="/docs"), RedocRenderPlugin(path="/redoc")],
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
            security=[{"BearerToken": []}],
        ),
    )
