"""What route handlers receive: the caller, and each of the api's services as its own typed dependency.

The services are built in the app's lifespan (app.py) and held, fully connected, in one `ApiServices`; a request
that arrives before the lifespan has connected gets a 503 ("the api is still starting").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from nats.aio.client import Client
from nats.js.kv import KeyValue

from services.api.core.api_errors import DependencyUnavailableError
from services.api.core.auth import Authenticator, Principal
from services.api.core.backfills import Backfills
from services.api.core.dead_letters import Redriver
from services.api.core.job_commands import JobCommands
from services.api.core.live_feed import LiveFeed
from services.api.core.projection_wait import ProjectionWait
from services.api.core.run_now import RunNow
from shared.bus.signing_secrets import SigningSecretStore
from shared.settings import Settings

_PRINCIPAL = "principal"
_STATE_KEY = "api_runtime"
_BEARER_PROVIDERS: set[Callable[..., Any]] = set()
_P = TypeVar("_P", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ApiServices:
    """Everything the api holds open, connected: built in the app's lifespan, then set once."""

    settings: Settings
    authenticator: Authenticator
    nc: Client
    pool: asyncpg.Pool
    projection: ProjectionWait
    commands: JobCommands
    ticker_kv: KeyValue
    run_now: RunNow
    backfills: Backfills
    redriver: Redriver
    signing: SigningSecretStore
    live: LiveFeed


class ApiRuntime:
    """The api's settings from the start, and its services once the lifespan has connected them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._services: ApiServices | None = None

    @property
    def services(self) -> ApiServices:
        """The connected services; DependencyUnavailableError (503) before the lifespan has connected them."""
        if self._services is None:
            raise DependencyUnavailableError("the api is still starting")
        return self._services

    @property
    def started(self) -> ApiServices | None:
        """The services if connected, for callers that answer without them (health, shutdown)."""
        return self._services

    def serve(self, services: ApiServices) -> None:
        self._services = services

    def into(self, state: State) -> None:
        state[_STATE_KEY] = self


def runtime_of(state: State) -> ApiRuntime:
    runtime = state[_STATE_KEY]
    if not isinstance(runtime, ApiRuntime):
        raise TypeError(f"the app's state holds no ApiRuntime under {_STATE_KEY!r}")
    return runtime


def services_of(state: State) -> ApiServices:
    """The connected services of the app holding `state` (503 while it is starting)."""
    return runtime_of(state).services


def _authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    return services_of(connection.app.state).authenticator.authenticate(connection.headers.get("authorization"))


def bearer_principal(provider: _P) -> _P:
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


async def provide_pool(state: State) -> asyncpg.Pool:
    return services_of(state).pool


async def provide_projection(state: State) -> ProjectionWait:
    return services_of(state).projection


async def provide_commands(state: State) -> JobCommands:
    return services_of(state).commands


async def provide_run_now(state: State) -> RunNow:
    return services_of(state).run_now


async def provide_backfills(state: State) -> Backfills:
    return services_of(state).backfills


async def provide_redriver(state: State) -> Redriver:
    return services_of(state).redriver


async def provide_signing(state: State) -> SigningSecretStore:
    return services_of(state).signing


async def provide_live(state: State) -> LiveFeed:
    return services_of(state).live


def dependencies() -> dict[str, Provide]:
    """Every dependency a handler may ask for by name, with its type."""
    return {
        "principal": Provide(provide_principal),
        "pool": Provide(provide_pool),
        "projection": Provide(provide_projection),
        "commands": Provide(provide_commands),
        "run_now": Provide(provide_run_now),
        "backfills": Provide(provide_backfills),
        "redriver": Provide(provide_redriver),
        "signing": Provide(provide_signing),
        "live": Provide(provide_live),
    }
