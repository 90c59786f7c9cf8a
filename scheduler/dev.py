"""`scheduler dev`: the whole system on one machine, with embedded NATS and Postgres unless URLs are given.

By default each service runs as its own child process (`scheduler projector`, `scheduler api`, ...), as in a
deployment, under the supervisor in scheduler/dev_supervisor.py; `--single-process` runs all four in dev's own event
loop instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import asyncpg
from pydantic import SecretStr

from scheduler.dev_supervisor import ChildSpec, Supervisor
from scheduler.embedded import (
    EmbeddedNats,
    EmbeddedNatsCluster,
    EmbeddedPostgres,
    free_port,
    missing_embedded,
    port_free,
    stop_leftover,
)
from scheduler.endpoints import DevEndpoints, alive, forget, record, recorded
from scheduler.runner import SERVICES, bind_api_socket, install_stop_signals, run_services
from services.api.core.auth import mint_token
from services.projector.migrate import migrate
from shared.db.pool import create_pool
from shared.runtime.collector import settle_collector
from shared.runtime.event_loop import run_on
from shared.settings import Settings, redacted_url, variable

log = logging.getLogger(__name__)

DEV_TOKEN_TTL_SECONDS = 7 * 86400
# Local receivers are the point of a dev setup; production refuses loopback targets unless an operator allows them.
DEV_EGRESS_ALLOW = "127.0.0.0/8,::1"
# The children's start order (the projector first: it owns the read models); they stop in reverse.
CHILD_ORDER = ("projector", "api", "ticker", "dispatcher")
# The settings dev decides (or the CLI's options set) that a child must get through its environment.
_CHILD_SETTINGS = (
    "nats_url",
    "database_url",
    "jwt_secret",
    "api_host",
    "api_port",
    "egress_allow",
    "log_level",
    "stream_replicas",
)
# The first api answer can take a while: a child process imports everything before it listens.
_HEALTHY_TIMEOUT_SECONDS = 60.0


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


def _banner(
    settings: Settings,
    data_dir: Path,
    account: uuid.UUID,
    embedded: list[str],
    token: str,
    single_process: bool = False,
) -> str:
    base = f"http://{settings.api_host}:{settings.api_port}"
    layout = "all in this process (--single-process)" if single_process else "a process each, restarted if one dies"
    lines = [
        "",
        "scheduler dev is running (Ctrl-C stops everything)",
        f"  services   {', '.join(CHILD_ORDER)}: {layout}",
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
    """All four services in this process's event loop (`--single-process`)."""
    stop = asyncio.Event()
    install_stop_signals(stop)

    async def ready() -> None:
        await _wait_healthy(f"http://{settings.api_host}:{settings.api_port}/health")
        print(_banner(settings, data_dir, account, embedded, token, single_process=True), flush=True)
        settle_collector()

    await run_services(settings, list(SERVICES), stop, on_ready=ready)


def _ops_ports(settings: Settings) -> dict[str, int | None]:
    """Each child's ops port: with SCHEDULER_OPS_PORT=P, the api serves it on P, the projector on P+1, the ticker on
    P+2 and the dispatcher on P+3 (in a deployment each has its own pod); 0 gives each an ephemeral port."""
    base = settings.ops_port
    if base is None:
        return dict.fromkeys(SERVICES, None)
    if base + len(SERVICES) - 1 > 65535:
        raise RuntimeError(f"SCHEDULER_OPS_PORT={base}: dev needs {len(SERVICES)} ports from it, one per service")
    return {name: base + index if base else 0 for index, name in enumerate(SERVICES)}


def child_environment(
    inherited: Mapping[str, str], settings: Settings, name: str, ops_port: int | None
) -> dict[str, str]:
    """The environment of service `name`'s process: dev's own, with the settings dev decided written into it."""
    env = dict(inherited)
    for field in _CHILD_SETTINGS:
        value = getattr(settings, field)
        if value is not None:
            env[variable(field)] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if ops_port is None:
        env.pop(variable("ops_port"), None)
    else:
        env[variable("ops_port")] = str(ops_port)
    if settings.instance_id:  # one name per process, as each pod of a deployment has its own
        env[variable("instance_id")] = f"{settings.instance_id}-{name}"
    env["PYTHONUNBUFFERED"] = "1"  # its lines reach dev's terminal as they are written
    return env


def child_specs(inherited: Mapping[str, str], settings: Settings) -> list[ChildSpec]:
    """One `scheduler <service>` process per service, in CHILD_ORDER."""
    ports = _ops_ports(settings)
    if settings.ops_port is not None:
        log.info("ops ports: %s", ", ".join(f"{name} {ports[name]}" for name in SERVICES))
    return [
        ChildSpec(
            name=name,
            argv=[sys.executable, "-m", "scheduler.cli", name],
            env=child_environment(inherited, settings, name, ports[name]),
        )
        for name in CHILD_ORDER
    ]


async def _migrated(settings: Settings) -> None:
    """Apply the read models' migrations before any service starts (the projector would too, but the api could
    answer queries first)."""
    try:
        pool = await create_pool(settings.database_url, max_size=1)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise RuntimeError(f"cannot connect to Postgres at {redacted_url(settings.database_url)}: {exc}") from exc
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    finally:
        await pool.close()


async def _run_processes(
    settings: Settings,
    inherited: Mapping[str, str],
    data_dir: Path,
    account: uuid.UUID,
    embedded: list[str],
    token: str,
) -> None:
    """Each service as its own child process of dev, supervised until Ctrl-C/SIGTERM."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    await _migrated(settings)
    supervisor = Supervisor(child_specs(inherited, settings), prefix=settings.log_format == "text")

    async def ready() -> None:
        await _wait_healthy(f"http://{settings.api_host}:{settings.api_port}/health", _HEALTHY_TIMEOUT_SECONDS)
        print(_banner(settings, data_dir, account, embedded, token), flush=True)

    await supervisor.run(stop, on_started=ready)


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
    for pid in previous.nats_pids or ((previous.nats_pid,) if previous.nats_pid is not None else ()):
        stop_leftover(pid, "nats-server", data_dir)


def run_dev(
    settings: Settings,
    data_dir: Path,
    host: str,
    port: int,
    *,
    inherited: Mapping[str, str],
    single_process: bool = False,
    nats_cluster: int = 1,
) -> None:
    """Start embedded servers for the URLs `settings` was not given, then all four services (a child process each,
    started with `inherited` and dev's settings, or all in this process); stop them all, in order, on Ctrl-C/SIGTERM.

    `nats_cluster` > 1: that many embedded nats-servers clustered over loopback, streams and buckets replicated on
    up to three of them, and a database of its own (the read models of one store never meet another's events)."""
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
    nats: EmbeddedNats | EmbeddedNatsCluster | None = None
    postgres: EmbeddedPostgres | None = None
    embedded: list[str] = []
    clustered = nats_cluster > 1 and "nats_url" not in given
    try:
        nats_url = settings.nats_url
        if clustered:
            nats = EmbeddedNatsCluster(data_dir / "nats-cluster", nats_cluster).start()
            nats_url = nats.url
            embedded.append(f"{nats_cluster} clustered nats-servers")
        elif "nats_url" not in given:
            nats = EmbeddedNats(data_dir / "nats", _nats_port(data_dir))
            nats.start()
            nats_url = nats.url
            embedded.append("nats-server")
        database_url = settings.database_url
        if "database_url" not in given:
            postgres = EmbeddedPostgres(data_dir / "postgres")
            postgres.start()
            database_url = postgres.create_database("scheduler_cluster" if clustered else "scheduler")
            embedded.append("postgres")
        replicas = settings.stream_replicas
        if clustered and "stream_replicas" not in given:
            replicas = min(3, nats_cluster)
        settings = settings.replaced(
            stream_replicas=replicas,
            nats_url=nats_url,
            database_url=database_url,
            jwt_secret=secret,
            api_host=host,
            api_port=port,
            egress_allow=settings.egress_allow if "egress_allow" in given else DEV_EGRESS_ALLOW,
        )
        nats_pids = tuple(nats.pids) if nats is not None else ()
        endpoints = DevEndpoints(
            pid=os.getpid(),
            api_url=f"http://{host}:{port}",
            nats_url=nats_url,
            database_url=database_url,
            namespace=settings.namespace,
            nats_pid=next(iter(nats_pids), None),
            nats_pids=nats_pids,
        )
        record(data_dir, endpoints)  # operators' commands and workers find the servers here
        token = _dev_token(secret, settings, account)
        if single_process:
            run_on(settings.event_loop, _run(settings, data_dir, account, embedded, token))
        else:
            run_on(settings.event_loop, _run_processes(settings, inherited, data_dir, account, embedded, token))
    finally:
        forget(data_dir)
        if nats is not None:
            nats.stop()
        if postgres is not None:
            postgres.stop()
