"""Which event loop a long-running process runs on (SCHEDULER_EVENT_LOOP)."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from shared.runtime.event_loop import run_on
from shared.settings import SettingsError, load_settings


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_uvloop_by_default_and_asyncio_when_asked() -> None:
    assert load_settings({}).event_loop == "uvloop"
    assert run_on("uvloop", _loop_type()) is uvloop.Loop
    chosen = run_on("asyncio", _loop_type())
    assert chosen is not uvloop.Loop
    assert issubclass(chosen, asyncio.BaseEventLoop)


def test_the_standard_loop_where_uvloop_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError, as on Windows
    assert run_on("uvloop", _loop_type()) is not uvloop.Loop


def test_an_unknown_loop_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="SCHEDULER_EVENT_LOOP"):
        load_settings({"SCHEDULER_EVENT_LOOP": "trio"})
    assert load_settings({"SCHEDULER_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
