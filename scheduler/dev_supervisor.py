"""The supervisor of `scheduler dev`: one child process per service, restarted when it dies, stopped in order.

Children are started in the order given and stopped in the reverse order (SIGTERM, then SIGKILL after a timeout).
Each child runs in a process group of its own, so a Ctrl-C in dev's terminal reaches dev alone and dev stops the
children in order; on Linux each child also asks the kernel for SIGKILL when dev dies (PR_SET_PDEATHSIG), so no
child outlives a dev that was killed outright. Their stdout and stderr are copied to dev's, each line prefixed with
the service's name. A child that exits while dev is not stopping is restarted after a short backoff; one that exits
`max_exits` times within `window_seconds` stops everything and is reported as `ChildKeepsExitingError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True)
class ChildSpec:
    """One supervised process: its name (the prefix of its output lines), command line and whole environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]


@dataclass(frozen=True)
class RestartPolicy:
    """Restart after `backoff_seconds`; give up on a child that exits `max_exits` times within `window_seconds`."""

    backoff_seconds: float = 1.0
    max_exits: int = 5
    window_seconds: float = 60.0
    stop_timeout_seconds: float = 20.0


class ChildKeepsExitingError(RuntimeError):
    """A child exited too often; the message names it. Every other child has been stopped."""

    def __init__(self, name: str, exits: int, window_seconds: float, code: int) -> None:
        super().__init__(
            f"{name} exited {exits} times within {window_seconds:g} s (last exit: {describe_exit(code)});"
            f" stopped everything (its output above says why)"
        )
        self.name = name


def describe_exit(code: int) -> str:
    """A return code as people read it: "code 3", or "code -9 (SIGKILL)" for a child killed by a signal."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"code {code} ({signal.Signals(-code).name})"
    return f"code {code}"


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGKILL when its parent dies (Linux); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent


async def _copy_lines(reader: asyncio.StreamReader, target: BinaryIO, prefix: bytes) -> None:
    """Copy a child's output to `target` a whole line at a time, each line prefixed, until end of file."""
    pending = b""
    while chunk := await reader.read(65536):
        *lines, pending = (pending + chunk).split(b"\n")
        if lines:
            target.write(b"".join(prefix + line + b"\n" for line in lines))
            target.flush()
    if pending:
        target.write(prefix + pending + b"\n")
        target.flush()


@dataclass
class _Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process | None = None
    exits: deque[float] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class Supervisor:
    """Runs `specs` as child processes until `stop` is set or one keeps exiting; see the module's docstring."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        policy: RestartPolicy | None = None,
        *,
        stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None,
        prefix: bool = True,
    ) -> None:
        self._children = [_Child(spec) for spec in specs]
        self._policy = policy or RestartPolicy()
        self._stdout = stdout if stdout is not None else sys.stdout.buffer
        self._stderr = stderr if stderr is not None else sys.stderr.buffer
        self._width = max((len(spec.name) for spec in specs), default=0)
        self._prefix = prefix
        self._failure: BaseException | None = None

    def pids(self) -> dict[str, int]:
        """The pid of each child running now, by name."""
        return {
            child.spec.name: child.process.pid
            for child in self._children
            if child.process is not None and child.process.returncode is None
        }

    async def run(self, stop: asyncio.Event, on_started: Callable[[], Awaitable[None]] | None = None) -> None:
        """Start every child (in order), then `on_started`; keep them running until `stop` is set, then stop them in
        reverse order. Raises ChildKeepsExitingError, or what `on_started` raised, once all are stopped."""
        ready: asyncio.Task[None] | None = None
        try:
            for child in self._children:
                if stop.is_set():
                    break
                await self._start(child)
                child.task = asyncio.create_task(
                    self._guarded(functools.partial(self._keep, child, stop), stop), name=f"keep {child.spec.name}"
                )
            if on_started is not None and not stop.is_set():
                ready = asyncio.create_task(self._guarded(on_started, stop), name="on started")
            await stop.wait()
        finally:
            stop.set()
            if ready is not None:
                ready.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ready
            await self._stop_all()
        if self._failure is not None:
            raise self._failure

    async def _guarded(self, call: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        try:
            await call()
        except Exception as exc:  # noqa: BLE001 - raised by run() once every child has stopped
            self._fail(exc, stop)

    def _fail(self, exc: BaseException, stop: asyncio.Event) -> None:
        if self._failure is None:
            self._failure = exc
        stop.set()

    async def _start(self, child: _Child) -> None:
        spec = child.spec
        process = await asyncio.create_subprocess_exec(
            *spec.argv,
            env=dict(spec.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Ctrl-C reaches dev alone, which stops the children in order. (A session of its own, not
            # `process_group=0`: uvloop's subprocesses take the one and refuse the other.)
            start_new_session=True,
            preexec_fn=_die_with_parent_hook(),
        )
        child.process = process
        log.debug("started %s (pid %s)", spec.name, process.pid)

    async def _keep(self, child: _Child, stop: asyncio.Event) -> None:
        """Wait for the child to exit; restart it unless dev is stopping or it keeps exiting."""
        policy, name = self._policy, child.spec.name
        while True:
            process = child.process
            if process is None:
                return
            if stop.is_set() and process.returncode is None:
                process.send_signal(signal.SIGTERM)  # started just as dev began to stop
            code = await self._wait_with_output(child, process)
            if stop.is_set():
                if code not in (0, -signal.SIGTERM):  # -SIGTERM: stopped before it could set up its handler
                    log.warning("%s exited with %s while stopping", name, describe_exit(code))
                return
            now = time.monotonic()
            child.exits.append(now)
            while child.exits and child.exits[0] < now - policy.window_seconds:
                child.exits.popleft()
            if len(child.exits) >= policy.max_exits:
                log.error("%s exited with %s; it keeps exiting, stopping everything", name, describe_exit(code))
                self._fail(ChildKeepsExitingError(name, len(child.exits), policy.window_seconds, code), stop)
                return
            log.warning("%s exited with %s; restarting in %g s", name, describe_exit(code), policy.backoff_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), policy.backoff_seconds)
            if stop.is_set():
                return
            try:
                await self._start(child)
            except OSError as exc:
                self._fail(RuntimeError(f"cannot restart {name}: {exc}"), stop)
                return

    async def _wait_with_output(self, child: _Child, process: asyncio.subprocess.Process) -> int:
        """The child's exit code, once it has exited and its output has been copied."""
        name = child.spec.name
        prefix = f"{name:<{self._width}} | ".encode() if self._prefix else b""
        copies = [
            _copy_lines(reader, target, prefix)
            for reader, target in ((process.stdout, self._stdout), (process.stderr, self._stderr))
            if reader is not None
        ]
        await asyncio.gather(*copies)
        return await process.wait()

    async def _stop_all(self) -> None:
        """Stop the children in reverse start order: SIGTERM, then SIGKILL after the stop timeout."""
        for child in reversed(self._children):
            task, process = child.task, child.process
            if task is None:  # started, but run() stopped before watching it
                if process is not None and process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    await self._reap(child.spec.name, process)
                continue
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
            done, _ = await asyncio.wait({task}, timeout=self._policy.stop_timeout_seconds)
            if not done:
                self._kill(child)
                await task
            task.result()

    async def _reap(self, name: str, process: asyncio.subprocess.Process) -> None:
        try:
            await asyncio.wait_for(process.wait(), self._policy.stop_timeout_seconds)
        except TimeoutError:
            log.warning("%s did not stop within %g s; killed", name, self._policy.stop_timeout_seconds)
            process.kill()
            await process.wait()

    def _kill(self, child: _Child) -> None:
        process = child.process
        if process is not None and process.returncode is None:
            log.warning("%s did not stop within %g s; killed", child.spec.name, self._policy.stop_timeout_seconds)
            process.kill()
