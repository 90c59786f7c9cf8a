"""`scheduler dev`: the whole system on one machine, with embedded NATS and Postgres unless URLs are given."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import uuid
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from scheduler.embedded import EmbeddedNats, EmbeddedPostgres, free_port, missing_embedded, port_free, stop_leftover
from scheduler.endpoints import DevEndpoints, alive, forget, record, recorded
from scheduler.runner import SERVICES, bind_api_socket, install_stop_signals, run_services
from services.api.core.auth import mint_token
from shared.settings import Settings, redacted_url

log = logging.getLogger(__name__)

DEV_TOKEN_TTL_SECONDS = 7 * 86400
# Local receivers are the point of a dev setup; production refuses loopback targets unless an operator allows them.
DEV_EGRESS_ALLOW = "127.0.0.0/8,::1"


def _kept(path: Path, make: str) -> str:
    """A value generated once and kept in the data directory (mode 600)."""
    if path.exists():
        return path.read_text().strip()
    path.write_text(make)
    path.chmod(0o600)
    return make


async def _wait_healthy(url: str, timeout: float = 20.0) -> None:
    async with aiohttp.ClientSession() as session:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout} s")
            await asyncio.sleep(0.1)


def _egress_line(settings: Settings) -> str:
    """Where webhooks may point, and whether local receivers (loopback) are among them."""
    if not settings.egress_allow:
        return "may target public addresses only (loopback refused; set SCHEDULER_EGRESS_ALLOW to change)"
    loopback = "allowed" if settings.egress_policy.allows_loopback else "refused"
    change = "set SCHEDULER_EGRESS_ALLOW to change"
    return f"may target public addresses and {settings.egress_allow} (loopback {loopback}; {change})"


def _dev_token(secret: SecretStr, settings: Settings, account: uuid.UUID) -> str:
    """A week's token for dev's account, signed with dev's secret."""
    return mint_token(
        secret.get_secret_value(), accounts=[account], audience=settings.jwt_audience, ttl_seconds=DEV_TOKEN_TTL_SECONDS
    )


def _banner(settings: Settings, data_dir: Path, account: uuid.UUID, embedded: list[str], token: str) -> str:
    base = f"http://{settings.api_host}:{settings.api_port}"
    lines = [
        "",
        "scheduler dev is running (Ctrl-C stops everything)",
        f"  API        {base}",
        f"  dashboard  {base}/ui",
        f"  API docs   {base}/docs  (ReDoc: {base}/redoc)",
        f"  data       {data_dir}" + (f"  (embedded: {', '.join(embedded)})" if embedded else ""),
        f"  NATS       {redacted_url(settings.nats_url)}",
        f"  Postgres   {redacted_url(settings.database_url)}",
        f"  webhooks   {_egress_line(settings)}",
        f"  account    {account}",
        "  token      (valid 7 days, for the account above)",
        f"  {token}",
        "",
        f'  try: curl -H "Authorization: Bearer <token>" {base}/health',
        "",
    ]
    return "\n".join(lines)


async def _run(settings: Settings, data_dir: Path, account: uuid.UUID, embedded: list[str], token: str) -> None:
    stop = asyncio.Event()
    install_stop_signals(stop)

    async def ready() -> None:
        await _wait_healthy(f"http://{settings.api_host}:{settings.api_port}/health")
        print(_banner(settings, data_dir, account, embedded, token), flush=True)

    await run_services(settings, list(SERVICES), stop, on_ready=ready)


def _nats_port(data_dir: Path) -> int:
    """The port dev's nats-server had last time, so an exported NATS_URL (a worker's) stays valid across restarts;
    a new one, kept from now on, when another process has taken it."""
    kept = data_dir / "nats_port"
    if kept.exists():
        port = int(kept.read_text().strip())
        if port_free(port):
            return port
        log.warning("NATS port %s (used last time) is taken; dev's NATS moves to a new port", port)
    port = free_port()
    kept.write_text(str(port))
    return port


def _claim(data_dir: Path) -> None:
    """Refuse a second dev on one data directory; stop a nats-server a crashed dev left running."""
    previous = recorded(data_dir)
    if previous is None:
        return
    if alive(previous.pid) and previous.pid != os.getpid():
        raise RuntimeError(f"scheduler dev is already running on {data_dir} (pid {previous.pid})")
    if previous.nats_pid is not None:
        stop_leftover(previous.nats_pid, "nats-server", data_dir)


def run_dev(settings: Settings, data_dir: Path, host: str, port: int) -> None:
    """Start embedded servers for the URLs `settings` was not given, then all four services; stop them all, in
    order, on Ctrl-C/SIGTERM."""
    given = settings.model_fields_set  # set in the environment (or a secrets file), not defaults
    missing = missing_embedded(nats="nats_url" not in given, postgres="database_url" not in given)
    if missing is not None:
        raise RuntimeError(missing)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _claim(data_dir)
    # A port in use is the commonest start-up failure: say so before starting any server.
    bind_api_socket(host, port).close()
    secret = settings.jwt_secret or SecretStr(_kept(data_dir / "jwt_secret", secrets.token_urlsafe(48)))
    account = uuid.UUID(_kept(data_dir / "dev_account", str(uuid.uuid4())))
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    embedded: list[str] = []
    try:
        nats_url = settings.nats_url
        if "nats_url" not in given:
            nats = EmbeddedNats(data_dir / "nats", _nats_port(data_dir))
            nats.start()
            nats_url = nats.url
            embedded.append("nats-server")
        database_url = settings.database_url
        if "database_url" not in given:
            postgres = EmbeddedPostgres(data_dir / "postgres")
            postgres.start()
            database_url = postgres.create_database("scheduler")
            embedded.append("postgres")
        settings = settings.replaced(
            nats_url=nats_url,
            database_url=database_url,
            jwt_secret=secret,
            api_host=host,
            api_port=port,
            egress_allow=settings.egress_allow if "egress_allow" in given else DEV_EGRESS_ALLOW,
        )
        endpoints = DevEndpoints(
            pid=os.getpid(),
            api_url=f"http://{host}:{port}",
            nats_url=nats_url,
            database_url=database_url,
            namespace=settings.namespace,
            nats_pid=nats.pid if nats is not None else None,
        )
        record(data_dir, endpoints)  # operators' commands and workers find the servers here
        asyncio.run(_run(settings, data_dir, account, embedded, _dev_token(secret, settings, account)))
    finally:
        forget(data_dir)
        if nats is not None:
            nats.stop()
        if postgres is not None:
            postgres.stop()
