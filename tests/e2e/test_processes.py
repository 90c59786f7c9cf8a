"""The slice again, as a user runs it: separate `scheduler` processes, and `scheduler dev` across a restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from scheduler.embedded import free_port
from shared.settings import Settings
from tests.e2e.harness import SCHEDULER, api_client, create_firing_job, service_env, start_process, stop_process
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NEXUS_TASK_JOB = {"name": "kept", "job_type": "cron", "cron_expression": "0 0 1 1 *", "task_name": "tasks.cleanup"}


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


def _fresh_terminal_env() -> dict[str, str]:
    """A second terminal on a fresh clone: nothing exported."""
    prefixes = ("SCHEDULER_", "NATS_", "DATABASE_", "SUPABASE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def _start_in_own_group(args: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """A `scheduler` command as a terminal runs it: its own process group, which Ctrl-C signals as a whole."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [SCHEDULER, *args], env=_fresh_terminal_env(), stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _postmaster(data_dir: Path) -> int | None:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def _tree(dev: subprocess.Popen[bytes], data_dir: Path) -> list[psutil.Process]:
    """Every process of a running dev: its own, its nats-server (own session) and postgres (daemonized by pg_ctl)."""
    found = [psutil.Process(dev.pid), *psutil.Process(dev.pid).children(recursive=True)]
    postmaster = _postmaster(data_dir)
    if postmaster is not None:
        found += [psutil.Process(postmaster), *psutil.Process(postmaster).children(recursive=True)]
    return found


def _kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


async def _banners(log: Path, count: int) -> None:
    await eventually(lambda: log.read_text().count("try: curl") >= count, timeout=90, what=f"dev banner #{count}")


@pytest.fixture
def outside_pytest_tmp() -> Iterator[Path]:
    """A directory for dev's data outside /tmp/pytest-of-<user>: when tests run as root, postgres runs as another
    user and needs to traverse the path, and every pytest session that starts resets that directory to mode 700."""
    directory = Path(tempfile.mkdtemp(prefix="scheduler-dev-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def test_dev_stops_everything_after_restarting_from_a_power_cut(tmp_path: Path, outside_pytest_tmp: Path) -> None:
    """A power cut (the whole tree SIGKILLed), a restart on the same data, then SIGTERM: nothing is left running."""
    data_dir, port, log = outside_pytest_tmp / "data", free_port(), tmp_path / "dev.log"
    args = ["dev", "--data-dir", str(data_dir), "--port", str(port)]
    started: list[psutil.Process] = []
    dev = _start_in_own_group(args, log)
    try:
        started += [psutil.Process(dev.pid)]
        await _banners(log, 1)
        token = _banner_value(log, "token")
        async with api_client(port, {"Authorization": f"Bearer {token}"}) as api:
            status, job = await api.call("POST", "/api/v1/jobs/", json=NEXUS_TASK_JOB)
            assert status == 201, job
        tree = _tree(dev, data_dir)
        started += tree
        assert {p.name() for p in tree} >= {"nats-server", "postgres"}, tree
        _kill_all(tree)  # the power cut
        dev.wait(30)
        await eventually(lambda: not any(p.is_running() for p in tree), timeout=30, what="the tree to die")
        assert (data_dir / "postgres" / "postmaster.pid").exists(), "a power cut leaves postmaster.pid behind"

        dev = _start_in_own_group(args, log)
        started += [psutil.Process(dev.pid)]
        await _banners(log, 2)
        tree = _tree(dev, data_dir)
        started += tree
        async with api_client(port, {"Authorization": f"Bearer {token}"}) as api:
            status, kept = await api.call("GET", f"/api/v1/jobs/{job['id']}")
            assert (status, kept["name"]) == (200, NEXUS_TASK_JOB["name"]), kept
        assert stop_process(dev, timeout=60) == 0, log.read_text()[-3000:]
        await eventually(lambda: not any(p.is_running() for p in tree), timeout=30, what="every process of dev")
        assert not [p for p in tree if p.is_running()], "left running after SIGTERM"
        assert not _group_alive(dev.pid)
        assert _postmaster(data_dir) is None, "postgres left running (postmaster.pid is still there)"
    finally:
        _kill_all(started)
