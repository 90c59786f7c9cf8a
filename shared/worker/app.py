"""The Worker: which functions run which tasks, with what concurrency and time limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.contracts.task_names import check_task_name
from shared.observability import tracing
from shared.observability.ops_server import OpsServer, Readiness
from shared.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class TaskFunction:
    """A registered task: the function (sync or async) and how long one run may take."""

    name: str
    function: Callable[..., Any]
    timeout: float


class Worker:
    """Register task functions with @worker.task("name"); run() consumes their queues until stopped.

    `concurrency` bounds the runs in flight across all tasks of this process; several processes share the load.
    `lookahead` is how many queued runs of each task this process holds beyond those running, started highest
    priority first (default: as many as `concurrency`); 0 leaves the whole queue to whichever process is free.
    Sync functions run in threads; one that overruns its timeout is recorded as timed out, but its thread cannot
    be killed and finishes in the background.
    """

    def __init__(
        self,
        name: str = "worker",
        *,
        concurrency: int = 8,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        lookahead: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lookahead is not None and lookahead < 0:
            raise ValueError("lookahead must not be negative")
        self.name = name
        self.concurrency = concurrency
        self.lookahead = concurrency if lookahead is None else lookahead
        self.timeout = timeout
        self.tasks: dict[str, TaskFunction] = {}

    def task(self, name: str, *, timeout: float | None = None) -> Callable[[F], F]:
        """Decorate a function to run task `name` (the job's task_name)."""
        check_task_name(name)

        def register(function: F) -> F:
            if name in self.tasks:
                raise ValueError(f"task {name!r} is registered twice")
            self.tasks[name] = TaskFunction(name, function, timeout or self.timeout)
            return function

        return register

    async def run(self, settings: Settings, stop: asyncio.Event) -> None:
        """Consume this worker's tasks until `stop` is set; runs in flight finish first."""
        from shared.worker.runner import WorkerRunner  # the runner imports this module

        tracing.configure(["worker"])  # only if the OTEL_* variables ask for traces
        # Its own /livez, /readyz and /metrics on SCHEDULER_OPS_PORT, as every service process has.
        readiness = Readiness(services=["worker"], started=True)
        ops = OpsServer(settings.ops_host, settings.ops_port, readiness) if settings.ops_port is not None else None
        if ops is not None:
            await ops.start()
        try:
            await WorkerRunner(self, settings).run(stop)
        finally:
            readiness.stopping = True
            if ops is not None:
                await ops.close()
