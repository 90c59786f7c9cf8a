"""Running services in one event loop: each service alone (`scheduler ticker`, ...) or all four (`dev`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

import uvicorn

from shared.observability import tracing
from shared.observability.ops_server import OpsServer, Readiness
from shared.runtime.tasks import task_group
from shared.settings import Settings

if TYPE_CHECKING:
    from litestar import Litestar

log = logging.getLogger(__name__)


class Service(Protocol):
    """A service as its factory returns it, connected: it runs until `stop` is set."""

    async def run(self, stop: asyncio.Event) -> None: ...


# Builds a service and connects it on enter; closes what it opened on exit.
ServiceFactory = Callable[[Settings], contextlib.AbstractAsyncContextManager[Service]]


class _ApiServer(uvicorn.Server):
    """Uvicorn without its own signal handling: the runner owns signals and stops it with the rest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """The api's app served on its bound socket; the app connects to NATS and Postgres as it starts serving."""

    def __init__(self, settings: Settings, app: Litestar, sock: socket.socket) -> None:
        self._app = app
        self._socket = sock
        config = uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning", lifespan="on")
        self._server = _ApiServer(config)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; a server that stops by itself before is an error."""
        serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        waiter = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({serving, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            from services.api.app import stop_live_updates

            waiter.cancel()
            await stop_live_updates(self._app)
            self._server.should_exit = True
            try:
                await serving
            except SystemExit as exc:  # uvicorn exits when its start-up fails
                raise RuntimeError("the api server could not start") from exc
        if not stop.is_set():
            raise RuntimeError("api server stopped unexpectedly")


@contextlib.asynccontextmanager
async def open_api(settings: Settings) -> AsyncIterator[ApiServer]:
    """The api with its listening socket bound, so a port in use is a clear error before anything else connects;
    the socket is closed on exit."""
    from services.api.app import create_app

    app = create_app(settings)
    sock = bind_api_socket(settings.api_host, settings.api_port)
    try:
        yield ApiServer(settings, app, sock)
    finally:
        sock.close()


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


def open_projector(settings: Settings) -> contextlib.AbstractAsyncContextManager[Service]:
    from services.projector.service import open_projector as opened

    return opened(settings)


def open_ticker(settings: Settings) -> contextlib.AbstractAsyncContextManager[Service]:
    from services.ticker.service import open_ticker as opened

    return opened(settings)


def open_dispatcher(settings: Settings) -> contextlib.AbstractAsyncContextManager[Service]:
    from services.dispatcher.service import open_dispatcher as opened

    return opened(settings)


# Enter order: the api binds its socket first (a port in use fails before anything connects), the projector
# applies migrations as it is entered, and every run() begins once all are entered. Each service's code is imported
# when it is opened: a process that runs one service (`scheduler ticker`, each of dev's) starts without the others'.
SERVICES: dict[str, ServiceFactory] = {
    "api": open_api,
    "projector": open_projector,
    "ticker": open_ticker,
    "dispatcher": open_dispatcher,
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
    """Enter the named services in SERVICES order (each connects as it is entered), run them all until `stop` or a
    failure, then close them in reverse order."""
    ordered = sorted(names, key=list(SERVICES).index)
    tracing.configure(ordered)  # only if the OTEL_* variables ask for traces
    readiness = Readiness(services=ordered)
    ops = OpsServer(settings.ops_host, settings.ops_port, readiness) if settings.ops_port is not None else None
    if ops is not None:
        await ops.start()  # alive (not ready) while starting: a slow start is not a dead process
    try:
        async with contextlib.AsyncExitStack() as entered:
            services: dict[str, Service] = {}
            for name in ordered:
                services[name] = await entered.enter_async_context(SERVICES[name](settings))
                log.info("%s started", name)
            await supervise(services, stop, readiness, on_ready)
    finally:
        if ops is not None:
            await ops.close()


async def supervise(
    services: Mapping[str, Service],
    stop: asyncio.Event,
    readiness: Readiness,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run every service until `stop`, in one task group. A service that fails (logged as "<name> failed: ...") or
    returns before `stop` sets it, so the others finish what they are doing and return; then the first failure (a
    failing `on_ready` included) is raised."""
    failures: list[Exception] = []

    async def run(name: str, service: Service) -> None:
        try:
            await service.run(stop)
        except Exception as exc:  # noqa: BLE001 - raised once every service has stopped
            log.error("%s failed: %s", name, exc)
            failures.append(exc)
        stop.set()  # a no-op when stopping already

    async def mark_stopping() -> None:
        await stop.wait()
        readiness.stopping = True

    async with task_group() as tg:
        for name, service in services.items():
            tg.create_task(run(name, service), name=name)
        tg.create_task(mark_stopping())
        readiness.started = True
        if on_ready is not None:
            try:
                await on_ready()
            except Exception as exc:  # noqa: BLE001 - raised once every service has stopped
                failures.append(exc)
                stop.set()
    if failures:
        raise failures[0]
