"""The slice again, as a user runs it: separate `scheduler` processes, and `scheduler dev` across a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
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
    """The running (or crashed) postmaster's pid; None while there is none, or only initdb's (a negative pid)."""
    try:
        pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid > 0 else None


def _tree(dev: subprocess.Popen[bytes], data_dir: Path) -> list[psutil.Process]:
    """Every process of a running dev: its own, its nats-server (own session) and postgres (daemonized by pg_ctl)."""
    found = [psutil.Process(dev.pid), *psutil.Process(dev.pid).children(recursive=True)]
    postmaster = _postmaster(data_dir)
    if postmaster is not None:
        found += [psutil.Process(postmaster), *psutil.Process(postmaster).children(recursive=True)]
    return found


def _kill_all(processes: list[psutil.Process]) -> None:
    """SIGKILL these and the children of those still running (a dev's nats-server is in a session of its own, so it
    would outlive its parent)."""
    everything = list(processes)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            everything += process.children(recursive=True)
    for process in everything:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _kill_postmaster(data_dir: Path) -> None:
    """Postgres is daemonized by pg_ctl, no child of dev: a test that failed early stops it by its pid file."""
    pid = _postmaster(data_dir)
    if pid is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            _kill_all([psutil.Process(pid)])


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
        _kill_postmaster(data_dir)


README = Path(__file__).parents[2] / "README.md"


def _readme_commands(prefix: str) -> list[list[str]]:
    """The README's `uv run scheduler <prefix>...` command lines, as arguments (comments dropped)."""
    found = re.findall(rf"^uv run scheduler ({prefix}[^#\n]*)", README.read_text(), re.MULTILINE)
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
    """The README's way, verbatim: `scheduler dev` in one terminal; the worker and the operators' commands in a
    second one, in the same directory, with nothing exported. Ctrl-C stops dev quietly; dev comes back on the same
    NATS port, and the worker, never restarted, carries on."""
    home, port, log, worker_log = outside_pytest_tmp, free_port(), tmp_path / "dev.log", tmp_path / "worker.log"
    example = re.search(r"```python\n(# reports\.py\n.*?)```", README.read_text(), re.DOTALL)
    assert example, "the README's worker example is gone"
    (home / "reports.py").write_text(example[1])
    worker_args = ["worker", "--app", "reports:worker"]
    assert worker_args in _readme_commands("worker"), "the README's worker command (with nothing exported) is gone"
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

            # The README's operators' commands, as written (placeholders filled), in the second terminal.
            status, page = await api.call("GET", f"/api/jobs?account_id={_banner_value(log, 'account')}")
            assert status == 200 and len(page["items"]) == 1, page
            commands = _readme_commands("(?:dlq|status)")
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


def _services(dev: subprocess.Popen[bytes]) -> dict[str, psutil.Process]:
    """dev's service processes (`python -m scheduler.cli <service>`), by service."""
    found: dict[str, psutil.Process] = {}
    for child in psutil.Process(dev.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            command = child.cmdline()
            if command[-3:-1] == ["-m", "scheduler.cli"]:
                found[command[-1]] = child
    return found


async def test_dev_runs_a_process_per_service_and_restarts_one_that_dies(
    receiver: Receiver, tmp_path: Path, outside_pytest_tmp: Path
) -> None:
    data_dir, port, log = outside_pytest_tmp / "data", free_port(), tmp_path / "dev.log"
    dev = _start_in_own_group(["dev", "--data-dir", str(data_dir), "--port", str(port)], log)
    started = [psutil.Process(dev.pid)]
    try:
        await _banners(log, 1)
        started += _tree(dev, data_dir)
        services = _services(dev)
        assert sorted(services) == ["api", "dispatcher", "projector", "ticker"], services
        assert len({p.pid for p in services.values()} | {dev.pid}) == 5
        token, account = _banner_value(log, "token"), _banner_value(log, "account")
        async with api_client(port, {"Authorization": f"Bearer {token}"}) as api:
            await create_firing_job(api, account, receiver.url)
            await eventually(lambda: asyncio.sleep(0, len(receiver.calls) >= 1), timeout=30, what="a first call")

            services["dispatcher"].kill()

            def new_dispatcher() -> psutil.Process | None:
                found = _services(dev).get("dispatcher")
                return found if found is not None and found.pid != services["dispatcher"].pid else None

            restarted = await eventually(new_dispatcher, timeout=30, what="a new dispatcher process")
            started.append(restarted)
            assert "dispatcher exited with code -9 (SIGKILL); restarting in 1 s" in log.read_text()
            before = len(receiver.calls)  # from now on, only the new dispatcher can deliver
            await eventually(lambda: asyncio.sleep(0, len(receiver.calls) >= before + 2), timeout=60, what="calls")
        assert {name: p.pid for name, p in _services(dev).items() if name != "dispatcher"} == {
            name: p.pid for name, p in services.items() if name != "dispatcher"
        }, "a service other than the dispatcher was restarted"

        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C in dev's terminal
        assert dev.wait(60) == 0, log.read_text()[-3000:]
        text = log.read_text()
        assert "stopping (SIGINT)" in text and "Traceback" not in text, text[-3000:]
        # Stopped in order, the projector last.
        stopping = re.findall(r"^(\w+) +\| .*stopping \(SIGTERM\)$", text, re.MULTILINE)
        assert stopping == ["dispatcher", "ticker", "api", "projector"], text[-3000:]
        processes = [*services.values(), restarted]
        await eventually(lambda: not any(p.is_running() for p in processes), timeout=30, what="every service")
        assert _postmaster(data_dir) is None, "postgres left running"
    finally:
        _kill_all(started)
        _kill_postmaster(data_dir)


async def test_no_service_outlives_a_dev_killed_outright(tmp_path: Path, outside_pytest_tmp: Path) -> None:
    data_dir, log = outside_pytest_tmp / "data", tmp_path / "dev.log"
    dev = _start_in_own_group(["dev", "--data-dir", str(data_dir), "--port", str(free_port())], log)
    started = [psutil.Process(dev.pid)]
    try:
        await _banners(log, 1)
        started += _tree(dev, data_dir)
        services = list(_services(dev).values())
        assert len(services) == 4, services
        dev.kill()  # dev alone: not its process group, not its servers
        dev.wait(30)
        await eventually(lambda: not any(p.is_running() for p in services), timeout=30, what="the services to die")
    finally:
        _kill_all(started)  # the embedded servers outlive a SIGKILLed dev (the next dev stops them)
        _kill_postmaster(data_dir)


async def test_dev_single_process_runs_every_service_in_devs_own_process(
    receiver: Receiver, tmp_path: Path, outside_pytest_tmp: Path
) -> None:
    data_dir, port, log = outside_pytest_tmp / "data", free_port(), tmp_path / "dev.log"
    dev = _start_in_own_group(["dev", "--single-process", "--data-dir", str(data_dir), "--port", str(port)], log)
    started = [psutil.Process(dev.pid)]
    try:
        await _banners(log, 1)
        started += _tree(dev, data_dir)
        assert _services(dev) == {}
        assert "all in this process (--single-process)" in log.read_text()
        token, account = _banner_value(log, "token"), _banner_value(log, "account")
        async with api_client(port, {"Authorization": f"Bearer {token}"}) as api:
            await create_firing_job(api, account, receiver.url)
            await eventually(lambda: asyncio.sleep(0, len(receiver.calls) >= 1), timeout=30, what="a call")
        assert stop_process(dev, timeout=60) == 0, log.read_text()[-3000:]
    finally:
        _kill_all(started)
        _kill_postmaster(data_dir)
