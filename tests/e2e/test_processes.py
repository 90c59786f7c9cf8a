"""The slice again, as a user runs it: separate `scheduler` processes, and `scheduler dev` across a restart."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from scheduler.embedded import free_port
from shared.settings import Settings
from tests.e2e.harness import SCHEDULER, api_client, create_firing_job, service_env, start_process, stop_process
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def _wait_success(api: Any, job_id: str) -> dict[str, Any]:
    async def succeeded() -> Any:
        _, page = await api.call("GET", f"/api/jobs/{job_id}/executions?status=success")
        return page["items"][0] if page["items"] else None

    return dict(await eventually(succeeded, timeout=20, what="a successful execution"))


async def test_four_services_as_separate_processes(
    settings: Settings, receiver: Receiver, account_id: uuid.UUID, auth_headers: dict[str, str], tmp_path: Path
) -> None:
    env = service_env(settings)
    processes = [
        start_process([name], env, tmp_path / f"{name}.log") for name in ("projector", "api", "ticker", "dispatcher")
    ]
    try:
        async with api_client(settings.api_port, auth_headers) as api:
            created = await create_firing_job(api, account_id, receiver.url)
            execution = await _wait_success(api, created["job"]["id"])
            assert execution["response_code"] == 200
            assert execution["occurrence_id"] in receiver.webhook_ids()
    finally:
        codes = [stop_process(p) for p in processes]
    logs = {p.name: p.read_text()[-2000:] for p in tmp_path.glob("*.log")}
    assert codes == [0, 0, 0, 0], logs


def _banner_value(log: Path, label: str) -> str:
    text = log.read_text()
    if label == "token":
        match = re.search(r"token .*\n\s+(\S+)", text)
    else:
        match = re.search(rf"^\s+{label}\s+(\S+)", text, re.MULTILINE)
    assert match, text[-3000:]
    return match.group(1)


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_dev_restarts_on_its_data_directory_without_double_fires(receiver: Receiver, tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL", "SUPABASE_JWT_SECRET")}
    log = tmp_path / "dev.log"
    args = ["dev", "--data-dir", str(data_dir), "--port", str(port)]

    dev = start_process(args, env, log)
    try:
        async with api_client(port, {}) as anonymous:
            await eventually(lambda: asyncio.sleep(0, "token" in log.read_text()), what="the dev banner")
            token, account = _banner_value(log, "token"), _banner_value(log, "account")
            anonymous.headers = {"Authorization": f"Bearer {token}"}  # the printed token is ready to use
            created = await create_firing_job(anonymous, account, receiver.url)
            await eventually(lambda: asyncio.sleep(0, len(receiver.calls) >= 3), timeout=20, what="calls")
    finally:
        code = stop_process(dev)  # asserted after the block, so a failure inside it is the one reported
    assert code == 0, log.read_text()[-3000:]
    nats_port = int(_banner_value(log, "NATS").rsplit(":", 1)[1])
    assert _port_closed(port) and _port_closed(nats_port)
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "postgres left running"
    before = len(receiver.calls)

    dev = start_process(args, env, log)
    try:
        async with api_client(port, {"Authorization": f"Bearer {token}"}) as api:
            status, job = await api.call("GET", f"/api/jobs/{created['job']['id']}")
            assert status == 200 and job["name"] == "every second"
            await eventually(lambda: asyncio.sleep(0, len(receiver.calls) >= before + 3), timeout=20, what="calls")
    finally:
        code = stop_process(dev)
    assert code == 0, log.read_text()[-3000:]
    ids = receiver.webhook_ids()
    assert len(ids) == len(set(ids)), "an occurrence was delivered twice across the restart"
    assert Path(SCHEDULER).exists()


def test_dev_with_its_port_taken_says_so_and_leaves_nothing_running(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "dev.log"
        dev = start_process(["dev", "--data-dir", str(tmp_path / "data"), "--port", str(port)], env, log)
        assert dev.wait(60) != 0
    assert f"cannot listen on 127.0.0.1:{port}" in log.read_text()
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists(), "postgres left running"
