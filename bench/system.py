"""The whole system for a benchmark: embedded nats-server and PostgreSQL, and the services either each as its own
process (the "processes" layout) or all under one `scheduler dev` (the "dev" layout, given the same servers)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

import psutil
import requests

from bench.cpu import Reading, role, snapshot, used_between
from scheduler.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from shared.settings import Settings, load_settings

SCHEDULER = str(Path(sys.executable).parent / "scheduler")
SERVICES = ("projector", "api", "ticker", "dispatcher")
Layout = Literal["processes", "dev"]
LAYOUTS: tuple[Layout, ...] = ("processes", "dev")
STOP_SECONDS = 30


class System:
    """`services`: which to start with it (more with `start`); `dispatchers`: how many dispatcher processes.
    `layout="dev"` runs all four services through `scheduler dev` instead (one dispatcher, no `start`/`stop`)."""

    def __init__(
        self,
        directory: Path,
        dispatchers: int = 1,
        services: tuple[str, ...] = SERVICES,
        env: dict[str, str] | None = None,
        layout: Layout = "processes",
    ) -> None:
        if layout == "dev" and (dispatchers != 1 or set(services) != set(SERVICES)):
            raise ValueError("scheduler dev runs the four services with one dispatcher")
        self.directory = directory
        self.dispatchers = dispatchers
        self.services = services
        self.layout = layout
        self.extra_env = env or {}
        self.secret = secrets.token_urlsafe(32)
        self.port = free_port()
        self._nats: EmbeddedNats | None = None
        self._postgres: EmbeddedPostgres | None = None
        self._processes: list[subprocess.Popen[bytes]] = []
        self._dev: subprocess.Popen[bytes] | None = None
        # The processes whose CPU is counted, by name; the descendants of each are counted with it.
        self.processes: dict[str, psutil.Process] = {}
        self._env: dict[str, str] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> System:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        try:
            return self._started()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _started(self) -> System:
        self._nats = EmbeddedNats(self.directory / "nats").start()
        self._postgres = EmbeddedPostgres(self.directory / "postgres").start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_", "NATS_", "DATABASE_"))}
        env |= {
            "NATS_URL": self._nats.url,
            "DATABASE_URL": self._postgres.create_database("bench"),
            "SUPABASE_JWT_SECRET": self.secret,
            "SCHEDULER_API_PORT": str(self.port),
            "SCHEDULER_EGRESS_ALLOW": "127.0.0.0/8",
            "SCHEDULER_LOG_LEVEL": "warning",
            # Seeded histories are dated from 2026-01-01 (bench/seed.py): kept forever, or a purge would take them.
            "SCHEDULER_EXECUTION_RETENTION_DAYS": "0",
        } | self.extra_env
        self._env = env
        if self.layout == "dev":
            self._start_dev()
        else:
            for name in self.services:
                for _ in range(self.dispatchers if name == "dispatcher" else 1):
                    self.start(name)
        if self._nats.pid is not None:
            self.processes["nats"] = psutil.Process(self._nats.pid)
        postmaster = _postmaster(self.directory / "postgres")
        if postmaster is not None:
            self.processes["postgres"] = postmaster
        if "api" in self.services:
            self._wait_healthy()
        return self

    def _start_dev(self) -> None:
        """`scheduler dev` on this system's servers: given NATS_URL and DATABASE_URL, it starts none of its own. In
        a session of its own, so that its whole process group can be killed if it does not stop."""
        data_dir = self.directory / "dev"
        command = [SCHEDULER, "dev", "--data-dir", str(data_dir), "--port", str(self.port)]
        with (self.directory / "dev.log").open("ab") as log:
            self._dev = subprocess.Popen(command, env=self._env, stdout=log, stderr=log, start_new_session=True)
        self.processes["dev"] = psutil.Process(self._dev.pid)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._dev is not None and self._dev.poll() is not None:
                raise RuntimeError(f"scheduler dev exited ({self._dev.returncode}); see {self.directory}/dev.log")
            try:
                # /health/detailed waits for a ticker's heartbeat; without a ticker, the api being up is enough.
                path = "/health/detailed" if "ticker" in self.services else "/health"
                if requests.get(self.base_url + path, timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the system did not become healthy; logs in {self.directory}")

    def start(self, name: str, env: dict[str, str] | None = None) -> psutil.Process:
        """Start one more service process (`name` is a `scheduler` subcommand; `env` adds to the system's)."""
        if self.layout == "dev":
            raise RuntimeError("under scheduler dev the services are dev's; none is started on its own")
        key = name if name not in self.processes else f"{name}-{len(self._processes) + 1}"
        with (self.directory / f"{key}.log").open("ab") as log:
            process = subprocess.Popen([SCHEDULER, name], env=self._env | (env or {}), stdout=log, stderr=log)
        self._processes.append(process)
        self.processes[key] = psutil.Process(process.pid)
        return self.processes[key]

    def stop(self, name: str) -> None:
        """Stop a service (SIGTERM, then wait for it)."""
        process = self.processes[name]
        process.terminate()
        process.wait(STOP_SECONDS)

    @property
    def settings(self) -> Settings:
        return load_settings(self._env)

    def cpu_snapshot(self) -> dict[tuple[int, float], Reading]:
        """Every counted process and its descendants now (see bench.cpu); a service under dev is reported under
        its role when its command line names one."""
        return snapshot(self.processes, self._group_of)

    @staticmethod
    def _group_of(root: str, process: psutil.Process) -> str:
        if root != "dev":
            return root  # PostgreSQL's backends are PostgreSQL's
        found = role(process, SERVICES)
        if found is not None:
            return found
        try:
            return f"dev child ({process.name()})"
        except psutil.Error:
            return "dev child"

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each process (Postgres with its backends, dev with its children by role)."""
        return used_between({}, self.cpu_snapshot())

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._dev is not None:
            _stop_dev(self._dev)
            self._dev = None
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        if self._nats is not None:
            self._nats.stop()
            self._nats = None
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None


def _stop_dev(dev: subprocess.Popen[bytes]) -> None:
    """Ctrl-C (SIGINT) as a developer would, then wait; SIGKILL its process group if it does not stop; and any of
    its descendants still running after it (by pid: they may have left its group)."""
    try:
        tree = psutil.Process(dev.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    if dev.poll() is None:
        dev.send_signal(signal.SIGINT)
    try:
        dev.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dev.pid, signal.SIGKILL)
        dev.wait()
    _, alive = psutil.wait_procs(tree, timeout=5)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=5)


def _postmaster(directory: Path) -> psutil.Process | None:
    """The PostgreSQL server process whose data directory is `directory`."""
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if command and command[0].endswith("postgres") and str(directory) in " ".join(command):
            return process
    return None
