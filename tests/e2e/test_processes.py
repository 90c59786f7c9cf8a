"""The slice again, as a user runs it: separate `scheduler` processes, and `scheduler dev` across a restart."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from scheduler.embedded import free_port
from shared.settings import Settings
from tests.e2e.dev_terminal import (
    _banner_value,
    _banners,
    _fresh_terminal_env,
    _group_alive,
    _kill_all,
    _kill_postmaster,
    _port_closed,
    _postmaster,
    _start_in_own_group,
    _tree,
)
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


async def test_dev_restarts_on_its_data_directory_without_double_fires(
    receiver: Receiver, tmp_path: Path, outside_pytest_tmp: Path
) -> None:
    data_dir, port = outside_pytest_tmp / "data", free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL", "SUPABASE_JWT_SECRET")}
    log = tmp_path / "dev.log"
    args = ["dev", "--data-dir", str(data_dir), "--port", str(port)]

    dev = start_process(args, env, log)
    try:
        await _banners(log, 1)  # dev starts a process per service: on a busy box, more than api_client's 20 s
        async with api_client(port, {}) as anonymous:
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
        await _banners(log, 2)
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
        _kill_postmaster(data_dir)


# The pages that hold the worker example and the operators' commands (docs/workers.md, docs/operations.md).
DOCS = Path(__file__).parents[2] / "docs"
WORKERS_PAGE, OPERATIONS_PAGE = DOCS / "workers.md", DOCS / "operations.md"


def _documented_commands(prefix: str) -> list[list[str]]:
    """The docs' `uv run scheduler <prefix>...` command lines (workers and operations pages), as arguments (comments
    dropped)."""
    text = WORKERS_PAGE.read_text() + "\n" + OPERATIONS_PAGE.read_text()
    found = re.findall(rf"^uv run scheduler ({prefix}[^#\n]*)", text, re.MULTILINE)
    return [line.split() for line in found]


async def _run_here(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [SCHEDULER, *args], env=_fresh_terminal_env(), cwd=cwd, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


async def _task_completes(api: Any, job: dict[str, Any]) -> None:
    status, accepted = await api.call("POST", f"/api/v1/jobs/{job['id']}/execute", json={"task_kwargs": {"days": 7}})
    assert status == 200, accepted

    async def done() -> Any:
        _, runs = await api.call("GET", f"/api/v1/jobs/{job['id']}/executions?limit=500")
        run = next((r for r in runs if r["task_id"] == accepted["task_id"]), None)
        return run if run and run["status"] in ("completed", "failed") else None

    run = await eventually(done, timeout=60, what="the worker to run the task")
    assert (run["status"], run["result"]) == ("completed", {"removed": 0}), run


async def test_a_worker_and_operators_find_dev_from_a_second_terminal_across_a_restart(
    tmp_path: Path, outside_pytest_tmp: Path
) -> None:
    """The documented way (docs/workers.md, docs/operations.md), verbatim: `scheduler dev` in one terminal; the
    worker and the operators' commands in a second one, in the same directory, with nothing exported. Ctrl-C stops
    dev quietly; dev comes back on the same NATS port, and the worker, never restarted, carries on."""
    home, port, log, worker_log = outside_pytest_tmp, free_port(), tmp_path / "dev.log", tmp_path / "worker.log"
    example = re.search(r"```python\n(# reports\.py\n.*?)```", WORKERS_PAGE.read_text(), re.DOTALL)
    assert example, "the worker example of docs/workers.md is gone"
    (home / "reports.py").write_text(example[1])
    worker_args = ["worker", "--app", "reports:worker"]
    assert worker_args in _documented_commands("worker"), "the docs' worker command (with nothing exported) is gone"
    started: list[psutil.Process] = []
    dev = _start_in_own_group(["dev", "--port", str(port)], log, cwd=home)
    started += [psutil.Process(dev.pid)]
    try:
        await _banners(log, 1)
        worker = _start_in_own_group(worker_args, worker_log, cwd=home)
        started += [psutil.Process(worker.pid)]
        started += _tree(dev, home / ".scheduler")
        recorded = json.loads((home / ".scheduler" / "dev.json").read_text())
        assert recorded["pid"] == dev.pid and recorded["nats_url"] == _banner_value(log, "NATS"), recorded
        token = _banner_value(log, "token")
        async with api_client(port, {"Authorization": f"Bearer {token}"}) as api:
            status, job = await api.call("POST", "/api/v1/jobs/", json=NEXUS_TASK_JOB)
            assert status == 201, job
            await _task_completes(api, job)  # the worker found dev's NATS with no NATS_URL

            # The operators' commands of docs/operations.md, as written (placeholders filled), in the second terminal.
            status, page = await api.call("GET", f"/api/jobs?account_id={_banner_value(log, 'account')}")
            assert status == 200 and len(page["items"]) == 1, page
            commands = _documented_commands("(?:dlq|status)")
            assert len(commands) >= 3, commands
            for args in commands:
                args = [page["items"][0]["id"] if a in ("<job_id>", "<id>") else a for a in args]
                result = await _run_here(args, home)
                assert result.returncode == 0, (args, result.stdout, result.stderr[-2000:])

        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C in dev's terminal
        assert dev.wait(60) == 0, log.read_text()[-3000:]
        text = log.read_text()
        assert "stopping (SIGINT)" in text and "Aborted!" not in text and "Traceback" not in text, text[-3000:]
        assert not (home / ".scheduler" / "dev.json").exists()
        result = await _run_here(["status"], home)
        assert result.returncode == 1 and "no scheduler dev is running" in result.stderr, result.stderr

        dev = _start_in_own_group(["dev", "--port", str(port)], log, cwd=home)
        started += [psutil.Process(dev.pid)]
        await _banners(log, 2)
        started += _tree(dev, home / ".scheduler")
        assert json.loads((home / ".scheduler" / "dev.json").read_text())["nats_url"] == recorded["nats_url"]
        async with api_client(port, {"Authorization": f"Bearer {token}"}) as api:
            await _task_completes(api, job)  # the same worker process, reconnected
        assert worker.poll() is None, worker_log.read_text()[-3000:]
        assert stop_process(dev, timeout=60) == 0, log.read_text()[-3000:]
        assert stop_process(worker) == 0, worker_log.read_text()[-3000:]
    finally:
        _kill_all(started)
        _kill_postmaster(home / ".scheduler")


async def test_ctrl_c_while_dev_starts_stops_quietly_and_leaves_nothing(
    tmp_path: Path, outside_pytest_tmp: Path
) -> None:
    data_dir, log = outside_pytest_tmp / "data", tmp_path / "dev.log"
    dev = _start_in_own_group(["dev", "--data-dir", str(data_dir), "--port", str(free_port())], log)
    started = [psutil.Process(dev.pid)]
    try:
        # Postgres is starting (or started): dev has not reached its event loop yet.
        await eventually(lambda: _postmaster(data_dir) is not None, timeout=60, what="postgres to start")
        started += _tree(dev, data_dir)
        os.killpg(dev.pid, signal.SIGINT)
        code = dev.wait(60)
        text = log.read_text()
        assert "Aborted!" not in text and "Traceback" not in text, text[-3000:]
        assert code in (0, 130), text[-3000:]
        await eventually(lambda: not any(p.is_running() for p in started), timeout=30, what="every process of dev")
        assert _postmaster(data_dir) is None, "postgres left running"
    finally:
        _kill_all(started)
        _kill_postmaster(data_dir)


async def test_a_second_dev_on_a_running_devs_data_directory_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    running = {"pid": os.getpid(), "api_url": "http://127.0.0.1:1", "nats_url": "nats://127.0.0.1:1",
               "database_url": "postgresql://postgres@/x", "namespace": "scheduler"}  # fmt: skip
    (data_dir / "dev.json").write_text(json.dumps(running))
    result = await _run_here(["dev", "--data-dir", str(data_dir), "--port", str(free_port())], tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"scheduler dev is already running on {data_dir} (pid {os.getpid()})" in result.stderr, result.stderr
    assert not (data_dir / "nats").exists() and not (data_dir / "postgres").exists(), "it started servers anyway"
