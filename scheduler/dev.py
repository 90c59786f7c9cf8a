"""`scheduler dev`: the whole system on one machine, with embedded NATS and Postgres unless URLs are given."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import uuid
from pathlib import Path

import aiohttp

from scheduler.embedded import EmbeddedNats, EmbeddedPostgres
from scheduler.runner import SERVICES, bind_api_socket, install_stop_signals, run_services
from services.api.auth import mint_token
from shared.settings import Settings, load_settings

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


def _banner(settings: Settings, data_dir: Path, account: uuid.UUID, embedded: list[str]) -> str:
    base = f"http://{settings.api_host}:{settings.api_port}"
    assert settings.jwt_secret is not None
    token = mint_token(
        settings.jwt_secret, accounts=[account], audience=settings.jwt_audience, ttl_seconds=DEV_TOKEN_TTL_SECONDS
    )
    lines = [
        "",
        "scheduler dev is running (Ctrl-C stops everything)",
        f"  API        {base}",
        f"  dashboard  {base}/ui",
        f"  API docs   {base}/docs  (ReDoc: {base}/redoc)",
        f"  data       {data_dir}" + (f"  (embedded: {', '.join(embedded)})" if embedded else ""),
        f"  NATS       {settings.nats_url}",
        f"  Postgres   {settings.database_url}",
        f"  webhooks   {_egress_line(settings)}",
        f"  account    {account}",
        "  token      (valid 7 days, for the account above)",
        f"  {token}",
        "",
        f'  try: curl -H "Authorization: Bearer <token>" {base}/health',
        "",
    ]
    return "\n".join(lines)


async def _run(settings: Settings, data_dir: Path, account: uuid.UUID, embedded: list[str]) -> None:
    stop = asyncio.Event()
    install_stop_signals(stop)

    async def ready() -> None:
        await _wait_healthy(f"http://{settings.api_host}:{settings.api_port}/health")
        print(_banner(settings, data_dir, account, embedded), flush=True)

    await run_services(settings, list(SERVICES), stop, on_ready=ready)


def run_dev(data_dir: Path, host: str, port: int) -> None:
    """Start embedded servers as needed, then all four services; stop them all, in order, on Ctrl-C/SIGTERM."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # A port in use is the commonest start-up failure: say so before starting any server.
    bind_api_socket(host, port).close()
    secret = os.environ.get("SUPABASE_JWT_SECRET") or _kept(data_dir / "jwt_secret", secrets.token_urlsafe(48))
    account = uuid.UUID(_kept(data_dir / "dev_account", str(uuid.uuid4())))
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    embedded: list[str] = []
    try:
        nats_url = os.environ.get("NATS_URL")
        if not nats_url:
            nats = EmbeddedNats(data_dir / "nats").start()
            nats_url = nats.url
            embedded.append("nats-server")
        database_url = os.environ.get("DATABASE_URL")
        if not database_url:
            postgres = EmbeddedPostgres(data_dir / "postgres").start()
            database_url = postgres.create_database("scheduler")
            embedded.append("postgres")
        settings = load_settings(
            nats_url=nats_url,
            database_url=database_url,
            jwt_secret=secret,
            api_host=host,
            api_port=port,
            egress_allow=os.environ.get("SCHEDULER_EGRESS_ALLOW", DEV_EGRESS_ALLOW),
        )
        asyncio.run(_run(settings, data_dir, account, embedded))
    finally:
        if nats is not None:
            nats.stop()
        if postgres is not None:
            postgres.stop()
