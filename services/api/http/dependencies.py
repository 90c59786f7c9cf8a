"""What route handlers receive: the caller and the service's resources, provided per request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from nats.aio.client import Client
from nats.js.kv import KeyValue

from services.api.core.auth import Authenticator, Principal
from services.api.core.dead_letters import Redriver
from services.api.core.projection_wait import ProjectionWatcher
from services.api.core.run_now import RunNow
from services.api.domain_errors import DependencyUnavailableError
from services.api.job_commands import JobCommands
from services.api.ui.live_feed import LiveFeed
from shared.bus.signing_secrets import SigningSecretStore
from shared.contracts.subjects import Names
from shared.settings import Settings

_PRINCIPAL = "principal"
_Provider = Callable[[Request[object, object, State]], Awaitable[Principal]]
_BEARER_PROVIDERS: set[Callable[..., Any]] = set()


@dataclass(slots=True)
class Resources:
    """Everything the api holds open, created in the app's lifespan."""

    settings: Settings
    names: Names
    authenticator: Authenticator
    nc: Client | None = None
    pool: asyncpg.Pool | None = None
    watcher: ProjectionWatcher | None = None
    commands: JobCommands | None = None
    ticker_kv: KeyValue | None = None
    run_now: RunNow | None = None
    redriver: Redriver | None = None
    signing: SigningSecretStore | None = None
    live: LiveFeed | None = None


def resources(state: State) -> Resources:
    res: Resources = state.resources
    if res.pool is None or res.commands is None or res.watcher is None:
        raise DependencyUnavailableError("the api is still starting")
    return res


async def await_projection(res: Resources, sequence: int, stream: str | None = None) -> None:
    """Read-your-writes: return once the read model includes `sequence` of `stream` (default: the jobs stream),
    bounded by settings."""
    assert res.watcher is not None
    timeout = res.settings.read_your_writes_timeout_seconds
    await res.watcher.wait_for(stream or res.names.jobs_stream, sequence, timeout)


def _authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    return resources(connection.app.state).authenticator.authenticate(connection.headers.get("authorization"))


def bearer_principal(provider: _Provider) -> _Provider:
    """Marks a principal provider that starts from the bearer token (as provide_principal does), so the
    authenticate_first guard checks the token before a body is read on the routes that use it."""
    _BEARER_PROVIDERS.add(provider)
    return provider


async def authenticate_first(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard of every route: a handler that needs an API caller checks the token before its body is read (Litestar
    reads bodies before it resolves dependencies), so a request without a valid token is a 401 whatever its body.
    The principal dependency checks it again (tens of microseconds) rather than trust a copy kept between the two.
    The dashboard's principal comes from its cookie, not a bearer token, so its routes are left to it."""
    if _PRINCIPAL not in handler.parsed_fn_signature.parameters:
        return
    provider = handler.resolve_dependencies().get(_PRINCIPAL)
    if provider is not None and provider.dependency in _BEARER_PROVIDERS:
        _authenticate(connection)


@bearer_principal
async def provide_principal(request: Request[object, object, State]) -> Principal:
    return _authenticate(request)


async def provide_resources(state: State) -> Resources:
    return resources(state)
