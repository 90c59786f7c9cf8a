"""Running services in one event loop: each service alone (`scheduler ticker`, ...) or all four (`dev`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

import uvicorn

from services.api.app import create_app, stop_live_updates
from services.dispatcher.service import build_dispatcher
from services.projector.service import build_projector
from services.ticker.service import build_ticker
from shared.observability.ops_server import OpsServer, Readiness
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
        self._app = create_app(settings)
        config = uvicorn.Config(
            self._app,
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            lifespan="on",
        )
        self._server = _ApiServer(config)
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        """Bind the listening socket now, so a port in use is a clear error before anything else runs."""
        self._socket = bind_api_socket(self._settings.api_host, self._settings.api_port)

    async def run(self, stop: asyncio.Event) -> None:
        if self._socket is None:
            await self.start()
        task = asyncio.create_task(self._server.serve(sockets=[self._socket] if self._socket else None))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        await stop_live_updates(self._app)
        self._server.should_exit = True
        waiter.cancel()
        try:
            await task
        except SystemExit as exc:  # uvicorn exits when its start-up fails
            raise RuntimeError("the api server could not start") from exc
        if not stop.is_set():
            raise RuntimeError("api server stopped unexpectedly")

    @property
    def started(self) -> bool:
        return bool(self._server.started)


def bind_api_socket(host: str, port: int) -> socket.socket:
    """The api's listening socket; a port in use is a RuntimeError that names it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP.
    # Without it, a response written in two parts waited for the client's delayed ACK: 40 ms on every request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"the api cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


# Start order: the api only binds its socket in start() (a port in use fails before anything connects), the
# projector applies migrations in start(), and every run() begins after all starts.
SERVICES: dict[str, Callable[[Settings], Service]] = {
    "api": ApiService,
    "projector": build_projector,
    "ticker": build_ticker,
    "dispatcher": build_dispatcher,
}


def install_stop_signals(stop: asyncio.Event) -> None:
    """Ctrl-C (SIGINT) and SIGTERM set `stop`, with one log line saying so."""
    loop = asyncio.get_running_loop()

    def stopping(sig: signal.Signals) -> None:
        if not stop.is_set():
            log.info("stopping (%s)", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping, sig)


async def run_services(
    settings: Settings, names: list[str], stop: asyncio.Event, on_ready: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Start the named services in SERVICES order, then run them all until `stop` or a failure."""
    ordered = sorted(names, key=list(SERVICES).index)
    services = [SERVICES[name](settings) for name in ordered]
    readiness = Readiness(services=ordered)
    ops = OpsServer(settings.ops_host, settings.ops_port, readiness) if settings.ops_port is not None else None
    if ops is not None:
        await ops.start()  # alive (not ready) while starting: a slow start is not a dead process
    try:
        await _run_started(ordered, services, stop, readiness, on_ready)
    finally:
        if ops is not None:
            await ops.close()


async def _run_started(
    ordered: list[str],
    services: list[Service],
    stop: asyncio.Event,
    readiness: Readiness,
    on_ready: Callable[[], Awaitable[None]] | None,
) -> None:
    for name, service in zip(ordered, services, strict=True):
        await service.start()
        log.info("%s started", name)
    tasks = {asyncio.create_task(s.run(stop), name=n) for n, s in zip(ordered, services, strict=True)}
    readiness.started = True
    stopping = asyncio.create_task(stop.wait())
    stopping.add_done_callback(lambda _: setattr(readiness, "stopping", True))
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
