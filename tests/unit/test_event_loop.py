"""The processes' event loop: uvloop where it is installed, the standard loop where it is not."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from shared.runtime import event_loop

pytestmark = pytest.mark.unit


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not a dependency on Windows")
def test_processes_run_on_uvloop_where_it_is_installed() -> None:
    assert isinstance(event_loop.run(_running_loop()), uvloop.Loop)


def test_without_uvloop_the_standard_loop_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # an import of it now fails, as where it is not installed
    loop = event_loop.run(_running_loop())
    assert not isinstance(loop, uvloop.Loop)
    assert isinstance(loop, asyncio.BaseEventLoop)


def test_the_result_and_the_error_of_the_main_coroutine_come_back() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def fails() -> None:
        raise LookupError("no such job")

    assert event_loop.run(answer()) == 42
    with pytest.raises(LookupError, match="no such job"):
        event_loop.run(fails())
