"""Running services in one event loop: each service alone (`scheduler ticker`, ...) or all four (`dev`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

import uvicorn

from services.api.app import create_app
from services.dispatcher.service import build_dispatcher
from services.projector.service import build_projector
from services.ticker.service import build_ticker
from shared.settings import Settings

log = logging.getLogger(__name__)


class Service(Protocol):
    async def start(self) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...


class _ApiServer(uvicorn.Server):
    """Uvicorn without its own signal handling: the runner owns signals and stops it with the rest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiService:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        config = uvicorn.Config(
            create_app(settings),
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            lifespan="on",
        )
        self._server = _ApiServer(config)

    async def start(self) -> None:
        return None

    async def run(self, stop: asyncio.Event) -> None:
        task = asyncio.create_task(self._server.serve())
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        self._server.should_exit = True
        waiter.cancel()
        try:
            await task
        except SystemExit as exc:  # uvicorn exits when it cannot bind or start
            raise RuntimeError(f"api server could not start on {self._settings.api_port}") from exc
        if not stop.is_set():
            raise RuntimeError("api server stopped unexpectedly")

    @property
    def started(self) -> bool:
        return bool(self._server.started)


SERVICES: dict[str, Callable[[Settings], Service]] = {
    "projector": build_projector,
    "api": ApiService,
    "ticker": build_ticker,
    "dispatcher": build_dispatcher,
}


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def run_services(
    settings: Settings, names: list[str], stop: asyncio.Event, on_ready: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Start the named services (the projector first: it applies migrations), run until `stop` or a failure."""
    ordered = sorted(names, key=list(SERVICES).index)
    services = [SERVICES[name](settings) for name in ordered]
    for name, service in zip(ordered, services, strict=True):
        await service.start()
        log.info("%s started", name)
    tasks = {asyncio.create_task(s.run(stop), name=n) for n, s in zip(ordered, services, strict=True)}
    if on_ready is not None:
        await on_ready()
    failure: BaseException | None = None
    pending = tasks
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is not None and failure is None:
                failure = task.exception()
                log.error("%s failed: %s", task.get_name(), failure)
                stop.set()
            elif not stop.is_set():
                stop.set()
    if failure is not None:
        raise failure
