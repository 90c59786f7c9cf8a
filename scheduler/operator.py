"""How operators' commands and workers find the system, and refuse a server that is not this system's.

NATS_URL and DATABASE_URL win when set; otherwise the `scheduler dev` running on the data directory (its
`dev.json`) says where its servers are. Before doing anything, a command checks that what it reaches is this
system (its streams, its tables) and says in one line when it is not, rather than printing a traceback or, worse,
creating streams or tables in someone else's server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import asyncpg
import nats
import nats.errors
import nats.js.errors

from scheduler.endpoints import DevNotRunningError, find
from shared.bus.connection import servers
from shared.contracts.subjects import Names
from shared.settings import Settings, SettingsError, redacted_url

Server = Literal["nats", "database"]
_FIELD: dict[Server, str] = {"nats": "nats_url", "database": "database_url"}
CONNECT_TIMEOUT_SECONDS = 5.0


class OperatorError(Exception):
    """The command cannot run against what it found; the message says why in one line."""


def operator_settings(settings: Settings, data_dir: Path, needs: tuple[Server, ...]) -> Settings:
    """`settings` with the URLs (and namespace) it was not given taken from the `scheduler dev` running on
    `data_dir`, when a needed one is missing; as given otherwise."""
    given = settings.model_fields_set  # set in the environment (or a secrets file), not defaults
    if all(_FIELD[server] in given for server in needs):
        return settings
    try:
        dev = find(data_dir)
    except DevNotRunningError as exc:
        raise OperatorError(str(exc)) from None
    found = {"nats_url": dev.nats_url, "database_url": dev.database_url, "namespace": dev.namespace}
    try:
        return settings.replaced(**{name: value for name, value in found.items() if name not in given})
    except SettingsError as exc:
        raise OperatorError(str(exc)) from None


async def preflight(settings: Settings, needs: tuple[Server, ...]) -> None:
    """Reach each needed server once and check it holds this system: OperatorError if not."""
    if "nats" in needs:
        await _check_nats(settings)
    if "database" in needs:
        await _check_database(settings)


async def _check_nats(settings: Settings) -> None:
    errors: list[Exception] = []

    async def collect(exc: Exception) -> None:
        errors.append(exc)

    url, stream = redacted_url(settings.nats_url), Names(settings.namespace).jobs_stream
    try:
        # Two quick attempts: nats-py's first connect otherwise retries each server 60 times, 2 s apart, before failing.
        nc = await nats.connect(
            servers(settings.nats_url),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.1,
            error_cb=collect,
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        cause = errors[-1] if errors else exc
        raise OperatorError(f"cannot reach NATS at {url}: {cause or type(cause).__name__}") from None
    try:
        try:
            await nc.jetstream().stream_info(stream)
        except nats.js.errors.NotFoundError:
            raise OperatorError(
                f"NATS at {url} has no {stream} stream: it is not this system's server"
                " (or SCHEDULER_NAMESPACE names another installation)"
            ) from None
        except (TimeoutError, nats.errors.Error) as exc:
            raise OperatorError(f"NATS at {url} has no JetStream this system can use: {exc}") from None
    finally:
        await nc.close()


async def _check_database(settings: Settings) -> None:
    url = redacted_url(settings.database_url)
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=CONNECT_TIMEOUT_SECONDS)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise OperatorError(f"cannot reach Postgres at {url}: {exc}") from None
    try:
        if await conn.fetchval("SELECT to_regclass('projector_positions')") is None:
            raise OperatorError(
                f"Postgres at {url} has no scheduler tables (no projector_positions): it is not this system's"
                " database, or the projector has not started yet"
            )
    finally:
        await conn.close()
