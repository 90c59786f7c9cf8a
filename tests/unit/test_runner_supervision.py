"""The runner enters services in order, runs them in one task group and stops them all together: with fake
services (no servers), each an async context manager that records what happens to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from scheduler import runner
from shared.observability.ops_server import Readiness
from shared.settings import Settings, load_settings

pytestmark = pytest.mark.unit


class FakeService:
    def __init__(self, name: str, journal: list[str], behaviour: str, running: asyncio.Event) -> None:
        self.name, self.journal, self.behaviour, self.running = name, journal, behaviour, running

    async def run(self, stop: asyncio.Event) -> None:
        self.journal.append(f"run {self.name}")
        self.running.set()
        if self.behaviour == "fail":
            raise RuntimeError(f"{self.name} broke")
        if self.behaviour == "return":
            return
        await stop.wait()
        self.journal.append(f"stopped {self.name}")  # a graceful stop, not a cancel


class Fakes:
    """Fake factories in place of the real services, and what happened to them, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.journal: list[str] = []
        self.running = {name: asyncio.Event() for name in runner.SERVICES}
        for name in runner.SERVICES:
            self.behave(monkeypatch, name, "wait")

    def behave(self, monkeypatch: pytest.MonkeyPatch, name: str, behaviour: str) -> None:
        monkeypatch.setitem(runner.SERVICES, name, self._factory(name, behaviour))

    def _factory(
        self, name: str, behaviour: str
    ) -> Callable[[Settings], contextlib.AbstractAsyncContextManager[FakeService]]:
        @contextlib.asynccontextmanager
        async def open_fake(_settings: Settings) -> AsyncIterator[FakeService]:
            if behaviour == "fail on enter":
                raise RuntimeError(f"{name} cannot connect")
            self.journal.append(f"enter {name}")
            try:
                yield FakeService(name, self.journal, behaviour, self.running[name])
            finally:
                self.journal.append(f"exit {name}")

        return open_fake

    async def all_running(self, names: list[str]) -> None:
        for name in names:
            await self.running[name].wait()


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    return Fakes(monkeypatch)


SETTINGS = load_settings({})


async def test_services_are_entered_in_order_run_together_and_closed_in_reverse(fakes: Fakes) -> None:
    stop = asyncio.Event()
    ready: list[str] = []

    async def on_ready() -> None:
        ready.append("ready")

    task = asyncio.create_task(runner.run_services(SETTINGS, ["dispatcher", "api", "ticker"], stop, on_ready))
    await asyncio.wait_for(fakes.all_running(["api", "ticker", "dispatcher"]), 5)
    assert fakes.journal[:3] == ["enter api", "enter ticker", "enter dispatcher"], "entered in SERVICES order"
    assert ready == ["ready"]
    stop.set()
    await asyncio.wait_for(task, 5)
    assert sorted(fakes.journal[3:9]) == sorted(
        f"{what} {n}" for what in ("run", "stopped") for n in ("api", "ticker", "dispatcher")
    )
    assert fakes.journal[9:] == ["exit dispatcher", "exit ticker", "exit api"], "closed in reverse, after every run"


async def test_a_failing_service_stops_the_others_and_its_error_is_raised(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fakes.behave(monkeypatch, "ticker", "fail")
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR), pytest.raises(RuntimeError, match="ticker broke"):
        await asyncio.wait_for(runner.run_services(SETTINGS, list(runner.SERVICES), stop), 5)
    assert stop.is_set()
    for name in ("api", "projector", "dispatcher"):
        assert f"stopped {name}" in fakes.journal, f"{name} was stopped, gracefully"
        assert f"exit {name}" in fakes.journal
    assert "exit ticker" in fakes.journal
    assert "ticker failed: ticker broke" in [r.getMessage() for r in caplog.records]


async def test_a_service_returning_before_stop_stops_them_all(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    fakes.behave(monkeypatch, "projector", "return")
    stop = asyncio.Event()
    await asyncio.wait_for(runner.run_services(SETTINGS, ["api", "projector", "ticker"], stop), 5)
    assert stop.is_set()
    assert {"stopped api", "stopped ticker", "exit api", "exit projector", "exit ticker"} <= set(fakes.journal)


async def test_a_service_that_cannot_open_closes_those_opened_before_and_runs_nothing(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.behave(monkeypatch, "projector", "fail on enter")
    with pytest.raises(RuntimeError, match="projector cannot connect"):
        await asyncio.wait_for(runner.run_services(SETTINGS, list(runner.SERVICES), asyncio.Event()), 5)
    assert fakes.journal == ["enter api", "exit api"]


async def test_a_failing_on_ready_stops_the_services_and_is_raised(fakes: Fakes) -> None:
    async def on_ready() -> None:
        raise RuntimeError("not healthy")

    stop = asyncio.Event()
    with pytest.raises(RuntimeError, match="not healthy"):
        await asyncio.wait_for(runner.run_services(SETTINGS, ["api", "ticker"], stop, on_ready), 5)
    assert {"stopped api", "stopped ticker", "exit api", "exit ticker"} <= set(fakes.journal)


async def test_readiness_is_ready_once_all_run_and_not_ready_once_stopping(fakes: Fakes) -> None:
    readiness = Readiness(services=["api"])
    stop = asyncio.Event()
    seen: list[bool] = []

    async def on_ready() -> None:
        seen.append(readiness.ready)
        stop.set()

    service = FakeService("api", fakes.journal, "wait", asyncio.Event())
    await asyncio.wait_for(runner.supervise({"api": service}, stop, readiness, on_ready), 5)
    assert seen == [True], "ready when on_ready is called"
    assert readiness.stopping and not readiness.ready
