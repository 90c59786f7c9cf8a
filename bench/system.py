"""The whole system for a benchmark: embedded nats-server and PostgreSQL, and each service as its own process."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import psutil
import requests

from scheduler.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from shared.settings import Settings, load_settings

SCHEDULER = str(Path(sys.executable).parent / "scheduler")
SERVICES = ("projector", "api", "ticker", "dispatcher")


class System:
    """`services`: which to start with it (more with `start`); `dispatchers`: how many dispatcher processes."""

    def __init__(
        self,
        directory: Path,
        dispatchers: int = 1,
        services: tuple[str, ...] = SERVICES,
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.dispatchers = dispatchers
        self.services = services
        self.extra_env = env or {}
        self.secret = secrets.token_urlsafe(32)
        self.port = free_port()
        self._nats: EmbeddedNats | None = None
        self._postgres: EmbeddedPostgres | None = None
        self._processes: list[subprocess.Popen[bytes]] = []
        self.processes: dict[str, psutil.Process] = {}
        self._env: dict[str, str] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> System:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
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
        } | self.extra_env
        self._env = env
        for name in self.services:
            for _ in range(self.dispatchers if name == "dispatcher" else 1):
                self.start(name)
        self.processes["nats"] = psutil.Process(self._nats.pid)
        postmaster = [p for p in psutil.process_iter(["cmdline"]) if str(self.directory / "postgres") in
                      " ".join(p.info["cmdline"] or ()) and p.info["cmdline"][0].endswith("postgres")]  # fmt: skip
        if postmaster:
            self.processes["postgres"] = postmaster[0]
        if "api" not in self.services:
            return self
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                # /health/detailed waits for a ticker's heartbeat; without a ticker, the api being up is enough.
                path = "/health/detailed" if "ticker" in self.services else "/health"
                if requests.get(self.base_url + path, timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the system did not become healthy; logs in {self.directory}")

    def start(self, name: str) -> psutil.Process:
        """Start one more service process (`name` is a `scheduler` subcommand)."""
        with (self.directory / f"{name}.log").open("ab") as log:
            process = subprocess.Popen([SCHEDULER, name], env=self._env, stdout=log, stderr=log)
        self._processes.append(process)
        key = name if name not in self.processes else f"{name}-{len(self._processes)}"
        self.processes[key] = psutil.Process(process.pid)
        return self.processes[key]

    def stop(self, name: str) -> None:
        """Stop a service (SIGTERM, then wait for it)."""
        process = self.processes[name]
        process.terminate()
        process.wait(30)

    @property
    def settings(self) -> Settings:
        return load_settings(self._env)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each process (Postgres with its backends)."""
        used: dict[str, float] = {}
        for name, process in self.processes.items():
            try:
                times = process.cpu_times()
                used[name] = times.user + times.system
                if name == "postgres":  # its backends: those running, and those gone (reaped by the postmaster)
                    used[name] += times.children_user + times.children_system
                    used[name] += sum(sum(c.cpu_times()[:2]) for c in process.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        return used

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._nats is not None:
            self._nats.stop()
        if self._postgres is not None:
            self._postgres.stop()
