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

import requests

from scheduler.embedded import EmbeddedNats, EmbeddedPostgres, free_port

SCHEDULER = str(Path(sys.executable).parent / "scheduler")
SERVICES = ("projector", "api", "ticker", "dispatcher")


class System:
    def __init__(self, directory: Path, dispatchers: int = 1) -> None:
        self.directory = directory
        self.dispatchers = dispatchers
        self.secret = secrets.token_urlsafe(32)
        self.port = free_port()
        self._nats: EmbeddedNats | None = None
        self._postgres: EmbeddedPostgres | None = None
        self._processes: list[subprocess.Popen[bytes]] = []

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
        }
        for name in (*SERVICES[:3], *["dispatcher"] * self.dispatchers):
            with (self.directory / f"{name}.log").open("ab") as log:
                self._processes.append(subprocess.Popen([SCHEDULER, name], env=env, stdout=log, stderr=log))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base_url + "/health/detailed", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the system did not become healthy; logs in {self.directory}")

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
