"""Running `scheduler dev` as a terminal does, and finding and stopping everything it started: shared by the tests
of dev's processes."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
from pathlib import Path

import psutil

from tests.e2e.harness import SCHEDULER
from tests.waiting import eventually


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
