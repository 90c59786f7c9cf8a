"""Wiring of the api: create_app(settings) builds the Litestar application; connections open in its lifespan."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress

import nats.errors
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from services.api.core.auth import Authenticator
from services.api.core.backfills import Backfills
from services.api.core.dead_letters import Redriver
from services.api.core.job_commands import JobCommands
from services.api.core.live_feed import LiveFeed
from services.api.core.projection_wait import ProjectionWait, ProjectionWatcher
from services.api.core.run_now import RunNow
from services.api.http.dependencies import ApiRuntime, ApiServices, authenticate_first, dependencies, runtime_of
from services.api.http.docs_pages import docs_assets, docs_pages
from services.api.http.error_responses import PrimaryErrors, exception_handlers
from services.api.http.openapi_docs import BEARER_SCHEME
from services.api.http.request_bodies import MAX_BODY_BYTES, JsonBodyRequest, StrictJsonBodyRequest
from services.api.http.tracing_middleware import traced
from services.api.nexus.errors import NexusErrors
from services.api.nexus.routes_cron import NexusCronController
from services.api.nexus.routes_jobs import NexusJobController
from services.api.ops.routes_asyncapi import asyncapi_json
from services.api.ops.routes_health import health, health_detailed
from services.api.ops.routes_metrics import metrics_endpoint
from services.api.rest.routes_backfills import BackfillController
from services.api.rest.routes_dead_letters import DeadLetterController
from services.api.rest.routes_jobs import JobController
from services.api.rest.routes_signing import SigningSecretController
from services.api.rest.routes_webhooks import WebhookController
from services.api.ui.errors import dashboard_or
from services.api.ui.router import root_to_dashboard, ui_router
from services.api.ui.templating import template_config
from shared.bus.connection import connect, disconnect
from shared.bus.executions import publish_requested
from shared.bus.job_store import NatsJobEventStore
from shared.bus.signing_secrets import SigningSecretStore, signing_bucket
from shared.bus.streams import ensure_streams, ticker_bucket
from shared.contracts.executions import ExecutionRequested
from shared.contracts.subjects import Names
from shared.db.pool import create_pool
from shared.settings import Settings

log = logging.getLogger(__name__)

QUERY_TIMEOUT_SECONDS = 3.0

API_DESCRIPTION = (
    "Jobs fire on their schedules and call their webhooks or run their tasks. Every endpoint except /health,"
    " /health/detailed, /asyncapi.json and the cron tools needs `Authorization: Bearer <jwt>`. Every error of"
    " /api/jobs and /webhooks is `{detail, error_code, status_code}`; /api/v1 answers `{detail}`. The events"
    " behind it are described in AsyncAPI at /asyncapi.json."
)


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


async def stop_live_updates(app: Litestar) -> None:
    """End the dashboard's open event streams, so the server's graceful stop does not wait on them."""
    services = runtime_of(app.state).started
    if services is not None:
        await services.live.close()


@asynccontextmanager
async def connected(settings: Settings, authenticator: Authenticator) -> AsyncIterator[ApiServices]:
    """The api's services, connected; closed again (what was opened, in reverse) when the context ends."""
    names = Names(settings.namespace)
    async with AsyncExitStack() as stack:
        nc = await connect(settings.nats_url, "api")
        stack.push_async_callback(disconnect, nc)
        js = nc.jetstream()
        await ensure_streams(js, settings)
        ticker_kv = await ticker_bucket(js, settings)
        # A query that gets no answer (a stalled database) ends in a 503, not a request that hangs.
        pool = await create_pool(settings.database_url, command_timeout=QUERY_TIMEOUT_SECONDS)
        stack.push_async_callback(pool.close)
        watcher = ProjectionWatcher(settings.database_url, names.projection_channel)
        stack.push_async_callback(watcher.close)
        await watcher.start()
        store = NatsJobEventStore(js, names, connected=lambda: nc.is_connected)

        async def publish(event: ExecutionRequested) -> int:
            if not nc.is_connected:
                raise nats.errors.ConnectionReconnectingError
            return await publish_requested(js, names, event)

        live = LiveFeed(js, names, watcher)
        stack.push_async_callback(live.close)
        yield ApiServices(
            settings=settings,
            authenticator=authenticator,
            nc=nc,
            pool=pool,
            projection=ProjectionWait(watcher, names, settings.read_your_writes_timeout_seconds),
            commands=JobCommands(
                store, max_timeout_seconds=settings.max_delivery_timeout_seconds, egress=settings.egress_policy
            ),
            ticker_kv=ticker_kv,
            run_now=RunNow(store, publish),
            backfills=Backfills(store, js, names, pool, settings.retention),
            redriver=Redriver(pool, js, names, store, publish),
            signing=SigningSecretStore(await signing_bucket(js, settings)),
            live=live,
        )


def create_app(settings: Settings) -> Litestar:
    """The api, unconnected: its lifespan connects it when the server starts."""
    check_open_mode_binding(settings)
    runtime = ApiRuntime(settings)
    authenticator = Authenticator(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with connected(settings, authenticator) as services:
            runtime.serve(services)
            yield

    state = State()
    runtime.into(state)
    handlers = exception_handlers(PrimaryErrors())
    handlers[NotFoundException] = dashboard_or(handlers[HTTPException])
    return Litestar(
        route_handlers=[
            health,
            health_detailed,
            asyncapi_json,
            metrics_endpoint,
            JobController,
            BackfillController,
            WebhookController,
            DeadLetterController,
            SigningSecretController,
            Router(
                path="/api/v1",
                route_handlers=[NexusJobController, NexusCronController],
                exception_handlers=exception_handlers(NexusErrors()),
                request_class=JsonBodyRequest,
            ),
            ui_router(settings),
            docs_assets(),
        ],
        template_config=template_config(),
        before_request=root_to_dashboard,
        guards=[authenticate_first],
        middleware=[traced],
        # Bodies: at most 1 MiB (413 past it) and 64 levels deep; /api and /webhooks type-strict, /api/v1 lax.
        request_max_body_size=MAX_BODY_BYTES,
        request_class=StrictJsonBodyRequest,
        # The process's logging is set up once (shared/observability/logs.py, text or JSON); Litestar's default
        # config would replace the root handler with its own text format.
        logging_config=None,
        dependencies=dependencies(),
        exception_handlers=handlers,
        lifespan=[lifespan],
        state=state,
        openapi_config=OpenAPIConfig(
            title="Scheduler",
            version="0.1.0",
            path="/",
            render_plugins=docs_pages(),
            description=API_DESCRIPTION,
            components=Components(
                security_schemes={
                    BEARER_SCHEME: SecurityScheme(
                        type="http",
                        scheme="bearer",
                        bearer_format="JWT",
                        description="HS256 JWT signed with SUPABASE_JWT_SECRET; `scheduler token` mints one",
                    )
                }
            ),
        ),
    )
