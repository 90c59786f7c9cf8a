"""`scheduler dev` as a real process, shared by a test module: the API suites run against it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import asyncpg
import nats
import pytest

from scheduler.embedded import EmbeddedNats, EmbeddedNatsCluster, free_port
from services.api.core.auth import mint_token
from shared.bus.heartbeat import latest_heartbeat
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.conftest import JWT_SECRET
from tests.e2e.harness import Api, start_process, stop_process
from tests.receiver import Receiver
from tests.servers import with_database
from tests.waiting import eventually

if TYPE_CHECKING:  # at run time it imports this module's users (through the fault suite's helpers)
    from tests.e2e.on_cluster import OnCluster


@dataclass(frozen=True, slots=True)
class DevServer:
    base_url: str
    namespace: str
    database_url: str
    nats_url: str
    log: Path


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _wait_healthy(url: str, process_alive: object, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health/detailed", timeout=2) as response:  # noqa: S310 - local URL
                if json.load(response).get("status") == "healthy":
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        assert callable(process_alive) and process_alive(), f"scheduler dev exited:\n{log.read_text()[-4000:]}"
        time.sleep(0.1)
    raise AssertionError(f"scheduler dev not healthy after {timeout} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def dev_server_env() -> dict[str, str]:
    """Settings a module's `scheduler dev` adds to the tests' own (a module overrides this fixture to change them)."""
    return {}


@pytest.fixture(scope="module")
def dev_server(
    nats_url: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory, dev_server_env: dict[str, str]
) -> Iterator[DevServer]:
    """`scheduler dev` on the test servers, with its own database and namespace, healthy (ticker beating)."""
    directory = tmp_path_factory.mktemp("dev")
    name = f"dev_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(postgres_admin_url, name))
    database_url = with_database(postgres_admin_url, name)
    namespace = f"d{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_", "NATS_", "DATABASE_", "SUPABASE_"))}
    env |= {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "SCHEDULER_NAMESPACE": namespace,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "SCHEDULER_DELIVERY_TIMEOUT_SECONDS": "5",
        "SCHEDULER_MAX_DELIVERY_TIMEOUT_SECONDS": "8",
        "SCHEDULER_ACK_WAIT_SECONDS": "10",
        # Callbacks are retried after 1, 2, 4... seconds instead of 10, 20, 40...
        "SCHEDULER_CALLBACK_RETRY_BASE_SECONDS": "1",
    } | dev_server_env
    log = directory / "dev.log"
    # One process: the API's behaviour is the same in both layouts, and a process per service would cost every
    # module using this fixture four interpreters' start-up. The default layout has its own tests
    # (test_processes.py, test_dev_supervision.py).
    args = ["dev", "--single-process", "--data-dir", str(directory / "data"), "--port", str(port)]
    process = start_process(args, env, log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base_url, lambda: process.poll() is None, log)
        yield DevServer(base_url, namespace, database_url, nats_url, log)
    finally:
        assert stop_process(process) == 0, log.read_text()[-4000:]


async def quiesced(dev: DevServer, seconds: float = 1.0) -> None:
    """Wait until whatever a just-paused or deleted job could still fire is in the read models.

    First the ticker's watermark must pass now + `seconds` (it has applied the pause and published everything up to
    then), then the projector must have applied every execution event published so far.
    """
    deadline = datetime.now(UTC) + timedelta(seconds=seconds)
    names = Names(dev.namespace)
    nc = await nats.connect(dev.nats_url)
    try:
        js = nc.jetstream()
        bucket = await js.key_value(names.ticker_bucket)

        async def ticker_past() -> bool:
            beat = await latest_heartbeat(bucket)
            assert beat is not None
            return beat.watermark >= deadline

        await eventually(ticker_past, timeout=20, what="the ticker's watermark to pass the pause")
        last = (await js.stream_info(names.executions_stream)).state.last_seq
    finally:
        await nc.close()
    conn = await asyncpg.connect(dev.database_url)
    try:

        async def reached() -> bool:
            position = await conn.fetchval(
                "SELECT position FROM projector_positions WHERE stream = $1", names.executions_stream
            )
            return position is not None and position >= last

        await eventually(reached, timeout=20, what=f"executions projected up to {last}")
    finally:
        await conn.close()


def token_for(*accounts: uuid.UUID, **kwargs: object) -> str:
    return mint_token(JWT_SECRET, accounts=list(accounts), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def api(dev_server: DevServer, account_id: uuid.UUID) -> AsyncIterator[Api]:
    """A client of the dev server holding a token for `account_id`; the account's jobs are deleted afterwards."""
    async with aiohttp.ClientSession() as session:
        client = Api(session, dev_server.base_url, {"Authorization": f"Bearer {token_for(account_id)}"})
        yield client
        await delete_jobs(client, account_id)


async def delete_jobs(api: Api, account_id: uuid.UUID) -> None:
    """So every-second jobs of finished tests stop loading the dispatcher for the next ones."""
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}&limit=1000")
    if status == 200:
        for job in page["items"]:
            await api.call("DELETE", f"/api/jobs/{job['id']}")


@pytest.fixture
def outside_pytest_tmp() -> Iterator[Path]:
    """A directory for dev's data outside /tmp/pytest-of-<user>: when tests run as root, postgres runs as another
    user and needs to traverse the path, and every pytest session that starts resets that directory to mode 700."""
    directory = Path(tempfile.mkdtemp(prefix="scheduler-dev-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def whole_again(nats_cluster: EmbeddedNatsCluster) -> Iterator[list[EmbeddedNats]]:
    """Servers a test stopped, frozen or killed are running again after it, and the cluster healthy."""
    touched: list[EmbeddedNats] = []
    yield touched
    for server in touched:
        if server.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGCONT)
        if not server.running:
            server.start()
    nats_cluster.wait_healthy(nats_cluster.servers)


@pytest.fixture
def on(
    cluster_settings: Settings,
    nats_cluster: EmbeddedNatsCluster,
    whole_again: list[EmbeddedNats],
    receiver: Receiver,
    account_id: uuid.UUID,
    auth_headers: dict[str, str],
) -> OnCluster:
    from tests.e2e.on_cluster import OnCluster  # here, not at the top: see the TYPE_CHECKING import

    return OnCluster(cluster_settings, nats_cluster, whole_again, receiver, account_id, auth_headers)
