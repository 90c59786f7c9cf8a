"""`scheduler dev` runs a process per service under one supervisor: a dead service is restarted, Ctrl-C stops them
in order, a SIGKILLed dev takes them along, and --single-process keeps them all in dev's own process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from scheduler.embedded import free_port
from shared.bus.connection import connect, disconnect
from tests.e2e.dev_terminal import (
    _banner_value,
    _banners,
    _kill_all,
    _kill_postmaster,
    _postmaster,
    _start_in_own_group,
    _tree,
)
from tests.e2e.harness import api_client, create_firing_job, stop_process
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


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


async def test_dev_on_a_nats_cluster_keeps_firing_when_the_streams_leader_is_killed(
    receiver: Receiver, tmp_path: Path, outside_pytest_tmp: Path
) -> None:
    """`scheduler dev --nats-cluster 3`: three nats-servers, every stream replicated on the three; SIGKILL of the
    server leading the JOBS and EXECUTIONS streams, and the job goes on firing on the other two."""
    data_dir, port, log = outside_pytest_tmp / "data", free_port(), tmp_path / "dev.log"
    dev = _start_in_own_group(["dev", "--nats-cluster", "3", "--data-dir", str(data_dir), "--port", str(port)], log)
    started = [psutil.Process(dev.pid)]
    try:
        await _banners(log, 1)
        started += _tree(dev, data_dir)
        urls = _banner_value(log, "NATS").split(",")
        assert len(urls) == 3, urls
        servers = {
            p.cmdline()[p.cmdline().index("-n") + 1]: p
            for p in started
            if p.is_running() and "nats-server" in p.name() and "-n" in p.cmdline()
        }
        assert sorted(servers) == ["n0", "n1", "n2"], servers
        token, account = _banner_value(log, "token"), _banner_value(log, "account")
        async with api_client(port, {"Authorization": f"Bearer {token}"}) as api:
            await create_firing_job(api, account, receiver.url)
            await eventually(lambda: asyncio.sleep(0, len(receiver.calls) >= 2), timeout=30, what="first calls")
            nc = await connect(",".join(urls), "test")
            try:
                js = nc.jetstream()
                infos = {s.config.name: s for s in await js.streams_info()}
            finally:
                await disconnect(nc)
            assert infos and all(s.config.num_replicas == 3 for s in infos.values()), infos
            leader = infos["SCHEDULER_JOBS"].cluster.leader  # type: ignore[union-attr]
            assert leader in servers
            servers[leader].kill()
            killed_at = time.time()
            before = len(receiver.calls)
            await eventually(
                lambda: asyncio.sleep(0, len(receiver.calls) >= before + 5), timeout=60, what="calls after the loss"
            )
            times = [c.at for c in receiver.calls]
            gap, at = max((b - a, a) for a, b in itertools.pairwise(times) if b > killed_at)
            print(
                f"FIGURES dev --nats-cluster 3, the streams' leader SIGKILLed: the longest wait between two deliveries"
                f" of the every-second job {gap:.1f} s, from {at - killed_at:+.1f} s of the kill"
            )
        os.killpg(dev.pid, signal.SIGINT)
        assert dev.wait(60) == 0, log.read_text()[-3000:]
        survivors = [p for name, p in servers.items() if name != leader]
        await eventually(lambda: not any(p.is_running() for p in survivors), timeout=30, what="the other servers")
    finally:
        _kill_all(started)
        _kill_postmaster(data_dir)
