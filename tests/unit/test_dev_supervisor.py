"""`scheduler dev`'s supervisor with tiny real child processes: restarts, giving up, stopping in order, no orphans."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator

import psutil
import pytest

from scheduler.dev_supervisor import ChildKeepsExitingError, ChildSpec, RestartPolicy, Supervisor
from tests.waiting import eventually

pytestmark = pytest.mark.unit

# Prints its pid, then waits to be stopped.
STEADY = "import os, time; print('pid', os.getpid(), flush=True); time.sleep(120)"
FAST = RestartPolicy(backoff_seconds=0.01, max_exits=3, window_seconds=60, stop_timeout_seconds=10)


def _child(name: str, code: str) -> ChildSpec:
    return ChildSpec(name=name, argv=[sys.executable, "-c", code], env=dict(os.environ))


def _pids(out: io.BytesIO, name: str) -> list[int]:
    return [int(pid) for pid in re.findall(rf"^{name} *\| pid (\d+)$", out.getvalue().decode(), re.MULTILINE)]


def _gone(pid: int) -> bool:
    """Exited (a zombie no one has reaped yet counts: it runs nothing)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def out() -> Iterator[io.BytesIO]:
    """The supervisor's stdout; every child pid printed there is SIGKILLed at the end, should a test fail early."""
    buffer = io.BytesIO()
    yield buffer
    for pid in (int(p) for p in re.findall(rb"\| pid (\d+)", buffer.getvalue())):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def _running(supervisor: Supervisor, stop: asyncio.Event) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(supervisor.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.shield(task), 30)


async def test_a_killed_child_is_restarted_after_a_backoff(out: io.BytesIO, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    stop = asyncio.Event()
    supervisor = Supervisor([_child("steady", STEADY), _child("victim", STEADY)], FAST, stdout=out)
    async with _running(supervisor, stop):
        [first] = await eventually(lambda: _pids(out, "victim"), what="the victim's pid")
        assert supervisor.pids()["victim"] == first
        os.kill(first, signal.SIGKILL)
        pids = await eventually(lambda: _pids(out, "victim") if len(_pids(out, "victim")) == 2 else None, what="two")
        assert pids[1] != first and supervisor.pids()["victim"] == pids[1]
        assert len(_pids(out, "steady")) == 1, "the other child was restarted too"
    assert "victim exited with code -9 (SIGKILL); restarting in 0.01 s" in caplog.text
    assert all(_gone(pid) for pid in _pids(out, "steady") + _pids(out, "victim"))


async def test_a_child_that_keeps_exiting_stops_everything_and_is_named(
    out: io.BytesIO, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    crashing = _child("crashing", "import sys; print('starting', flush=True); print('no newline', end=''); sys.exit(3)")
    supervisor = Supervisor([_child("steady", STEADY), crashing], FAST, stdout=out)
    with pytest.raises(ChildKeepsExitingError, match=r"^crashing exited 3 times within 60 s \(last exit: code 3\)"):
        await asyncio.wait_for(supervisor.run(asyncio.Event()), 30)
    text = out.getvalue().decode()
    assert text.count("crashing | starting\ncrashing | no newline\n") == 3, text
    assert caplog.text.count("crashing exited with code 3; restarting in 0.01 s") == 2, caplog.text
    [steady] = _pids(out, "steady")
    assert _gone(steady), "the steady child was left running"


async def test_exits_further_apart_than_the_window_are_not_counted(out: io.BytesIO) -> None:
    policy = RestartPolicy(backoff_seconds=0.05, max_exits=2, window_seconds=0.01)
    stop = asyncio.Event()
    flaky = _child("flaky", "import os; print('pid', os.getpid(), flush=True); raise SystemExit(1)")
    async with _running(Supervisor([flaky], policy, stdout=out), stop) as task:
        await eventually(lambda: len(_pids(out, "flaky")) >= 4, what="four starts")
        assert not task.done()
    task.result()  # stopped, not given up


async def test_children_stop_in_reverse_start_order_on_sigterm(out: io.BytesIO) -> None:
    polite = textwrap.dedent("""
        import os, signal, sys, time
        def bye(*_):
            print('bye', flush=True)
            time.sleep(0.2)  # were they stopped together, the others' byes would come in between
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print('pid', os.getpid(), flush=True)
        time.sleep(120)
    """)
    stop = asyncio.Event()
    names = ["projector", "api", "ticker", "dispatcher"]
    async with _running(Supervisor([_child(name, polite) for name in names], FAST, stdout=out), stop):
        await eventually(lambda: all(_pids(out, name) for name in names), what="every child to start")
    byes = re.findall(r"^(\w+) *\| bye$", out.getvalue().decode(), re.MULTILINE)
    assert byes == names[::-1]


async def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(
    out: io.BytesIO, caplog: pytest.LogCaptureFixture
) -> None:
    stubborn = "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + STEADY
    policy = RestartPolicy(stop_timeout_seconds=0.5)
    stop = asyncio.Event()
    async with _running(Supervisor([_child("stubborn", stubborn)], policy, stdout=out), stop):
        await eventually(lambda: _pids(out, "stubborn"), what="the child to start")
    assert "stubborn did not stop within 0.5 s; killed" in caplog.text
    assert all(_gone(pid) for pid in _pids(out, "stubborn"))


async def test_a_failing_on_started_stops_the_children_and_is_raised(out: io.BytesIO) -> None:
    async def never_healthy() -> None:
        await eventually(lambda: _pids(out, "steady"), what="the child to start")
        raise RuntimeError("the api did not answer")

    supervisor = Supervisor([_child("steady", STEADY)], FAST, stdout=out)
    with pytest.raises(RuntimeError, match="the api did not answer"):
        await asyncio.wait_for(supervisor.run(asyncio.Event(), on_started=never_healthy), 30)
    assert all(_gone(pid) for pid in _pids(out, "steady"))


async def test_children_are_in_their_own_process_group_so_ctrl_c_reaches_only_dev(out: io.BytesIO) -> None:
    stop = asyncio.Event()
    async with _running(Supervisor([_child("steady", STEADY)], FAST, stdout=out), stop):
        [pid] = await eventually(lambda: _pids(out, "steady"), what="the child to start")
        assert os.getpgid(pid) == pid != os.getpgid(0)


SUPERVISING = textwrap.dedent("""
    import asyncio, sys
    from scheduler.dev_supervisor import ChildSpec, Supervisor
    child = ChildSpec("orphan", [sys.executable, "-c", sys.argv[1]], {})
    asyncio.run(Supervisor([child]).run(asyncio.Event()))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_no_child_outlives_a_supervisor_killed_outright() -> None:
    supervisor = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SUPERVISING, STEADY, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    stdout = supervisor.stdout
    assert stdout is not None
    child: int | None = None
    try:
        line = await asyncio.wait_for(stdout.readline(), 30)
        match = re.fullmatch(rb"orphan \| pid (\d+)\n", line)
        assert match, line
        child = int(match[1])
        supervisor.kill()
        await asyncio.wait_for(supervisor.wait(), 10)
        await eventually(lambda: _gone(child), timeout=10, what="the child to die with its supervisor")
    finally:
        for pid in (supervisor.pid, child):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(supervisor.wait(), 10)
