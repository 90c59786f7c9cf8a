"""What route handlers receive: the caller and the service's resources, provided per request."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from litestar import Request
from litestar.datastructures import State
from nats.aio.client import Client
from nats.js.kv import KeyValue

from services.api.auth import Authenticator, Principal
from services.api.dead_letters import Redriver
from services.api.domain_errors import DependencyUnavailableError
from services.api.job_commands import JobCommands
from services.api.projection_wait import ProjectionWatcher
from services.api.run_now import RunNow
from services.api.ui.live_feed import LiveFeed
from shared.bus.signing_secrets import SigningSecretStore
from shared.contracts.subjects import Names
from shared.settings import Settings


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


async def provide_principal(request: Request[object, object, State]) -> Principal:
    return resources(request.app.state).authenticator.authenticate(request.headers.get("authorization"))


async def provide_resources(state: State) -> Resources:
    return resources(state)
