"""Where a running `scheduler dev` is reached: `dev.json` in its data directory, written once its servers are up and
removed when it stops. Operators' commands and workers read it, so they need no NATS_URL or DATABASE_URL.

A file whose pid is dead is what an unclean stop (a crash, a SIGKILL, a power cut) leaves: it means "not running",
and the pids of the embedded servers it names let the next `dev` stop any that outlived it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import msgspec

FILE_NAME = "dev.json"


class DevEndpoints(msgspec.Struct, frozen=True, kw_only=True):
    """What `scheduler dev` (process `pid`) serves, and the pids of the nats-servers it started (none: not
    embedded; three with `--nats-cluster 3`). `nats_pid`, the first of them, is what dev recorded before clusters."""

    pid: int
    api_url: str
    nats_url: str
    database_url: str
    namespace: str
    nats_pid: int | None = None
    nats_pids: tuple[int, ...] = ()


class DevNotRunningError(Exception):
    """No `scheduler dev` runs on the data directory; the message says why in one line."""


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie counts: its parent has not reaped it yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def record(data_dir: Path, endpoints: DevEndpoints) -> None:
    """Write the file atomically (readers never see half of it), readable by its owner only."""
    path = data_dir / FILE_NAME
    partial = path.with_suffix(".tmp")
    partial.write_bytes(msgspec.json.encode(endpoints))
    partial.chmod(0o600)
    partial.replace(path)


def forget(data_dir: Path) -> None:
    """Remove the file if it is this process's (a stopping `dev` never removes another one's)."""
    path = data_dir / FILE_NAME
    with contextlib.suppress(FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
        if msgspec.json.decode(path.read_bytes(), type=DevEndpoints).pid == os.getpid():
            path.unlink()


def recorded(data_dir: Path) -> DevEndpoints | None:
    """What the file says, running or not; None when there is no (readable) file."""
    try:
        return msgspec.json.decode((data_dir / FILE_NAME).read_bytes(), type=DevEndpoints)
    except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def find(data_dir: Path) -> DevEndpoints:
    """The endpoints of the `scheduler dev` running on `data_dir`, or DevNotRunningError saying why not."""
    data_dir = data_dir.resolve()
    found = recorded(data_dir)
    hint = "start `scheduler dev`, pass its --data-dir, or set NATS_URL and DATABASE_URL"
    if found is None:
        raise DevNotRunningError(f"no scheduler dev is running on {data_dir} (no {FILE_NAME} there): {hint}")
    if not alive(found.pid):
        raise DevNotRunningError(
            f"scheduler dev is not running on {data_dir} (its {FILE_NAME} is from pid {found.pid}, which has exited):"
            f" {hint}"
        )
    return found
