"""Running a Worker: one durable consumer per task name, shared by every process that runs the task."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from dataclasses import dataclass

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.attempts.recorder import AttemptRecorder
from shared.attempts.runtime import AttemptRuntime
from shared.attempts.sink import open_jetstream_sink
from shared.bus.connection import connect, disconnect
from shared.bus.consumers import ensure_consumer
from shared.bus.overlap import RunningRuns, running_bucket, under_overlap_policy
from shared.bus.prioritized import PrioritizedConsumer, Slots
from shared.bus.streams import ensure_streams
from shared.contracts.executions import ExecutionRequested
from shared.contracts.subjects import Names
from shared.observability import tracing
from shared.settings import Settings
from shared.worker.app import TaskFunction, Worker
from shared.worker.task_executor import TaskExecutor

log = logging.getLogger(__name__)

# A run is acknowledged only when its result is stored; until then the server must not hand it to another worker,
# so the ack wait outlasts the time limit, and long runs tell the server they are still going.
ACK_WAIT_MARGIN_SECONDS = 30.0
PROGRESS_EVERY_SECONDS = 10.0
_COMPARED = ("filter_subject", "ack_policy", "ack_wait", "max_deliver", "deliver_policy")


async def ensure_task_consumer(js: JetStreamContext, names: Names, task: TaskFunction) -> None:
    wanted = ConsumerConfig(
        durable_name=names.task_consumer(task.name),
        filter_subject=names.task_subject(task.name),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=task.timeout + ACK_WAIT_MARGIN_SECONDS,
        max_deliver=-1,
    )
    await ensure_consumer(js, names.tasks_stream, wanted, _COMPARED)


class WorkerRunner:
    def __init__(self, worker: Worker, settings: Settings) -> None:
        self._worker = worker
        self._settings = settings
        self._names = Names(settings.namespace)
        self._slots = Slots(worker.concurrency)
        self.worker_id = f"{worker.name}@{socket.gethostname()}:{os.getpid()}"

    async def run(self, stop: asyncio.Event) -> None:
        """Consume the worker's tasks until `stop` is set; runs in flight finish first."""
        if not self._worker.tasks:
            raise ValueError(f"worker {self._worker.name!r} has no tasks registered")
        nc = await connect(self._settings.nats_url, f"worker {self._worker.name}")
        try:
            js = nc.jetstream()
            await ensure_streams(js, self._settings)
            sink = await open_jetstream_sink(js, self._settings)
            recorder = AttemptRecorder(sink)
            runs = RunningRuns(await running_bucket(js, self._settings))
            runtime = AttemptRuntime(recorder, self.worker_id)
            consuming = _Consuming(self._worker, self._settings, self._names, self._slots, js, runtime, runs)
            loops = []
            for task in self._worker.tasks.values():
                await ensure_task_consumer(js, self._names, task)
                loops.append(consuming.consume(task, stop))
            log.info("worker %s running %s", self.worker_id, ", ".join(sorted(self._worker.tasks)))
            await asyncio.gather(*loops)
        finally:
            await disconnect(nc)


@dataclass(frozen=True, slots=True)
class _Consuming:
    """A connected worker's consumers: each task's queue, its runs recorded by the attempt runtime."""

    worker: Worker
    settings: Settings
    names: Names
    slots: Slots
    js: JetStreamContext
    runtime: AttemptRuntime
    runs: RunningRuns

    async def consume(self, task: TaskFunction, stop: asyncio.Event) -> None:
        sub = await self.js.pull_subscribe_bind(self.names.task_consumer(task.name), stream=self.names.tasks_stream)
        consumer = PrioritizedConsumer(
            sub,
            functools.partial(self._handle, TaskExecutor(task)),
            slots=self.slots,
            lookahead=self.worker.lookahead,
            ack_wait_seconds=task.timeout + ACK_WAIT_MARGIN_SECONDS,
        )
        try:
            await consumer.run(stop)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _handle(self, executor: TaskExecutor, request: ExecutionRequested, msg: Msg) -> None:
        if request.task is None:
            log.error("dropping execution %s on %s: it names no task", request.execution_id, msg.subject)
            return
        await under_overlap_policy(
            self.runs,
            request,
            functools.partial(self._run, executor, request, msg),
            functools.partial(self.runtime.skip_by_overlap, request),
            refresh_every=self.settings.ack_wait_seconds / 3,
        )

    async def _run(self, executor: TaskExecutor, request: ExecutionRequested, msg: Msg) -> None:
        task = request.task.name if request.task is not None else ""
        what = {"execution.id": str(request.execution_id), "task.name": task} if tracing.enabled() else None
        progress = asyncio.create_task(_keep_alive(msg))
        try:
            with tracing.span(f"task {task}", tracing.CONSUMER, parent=msg.headers, attributes=what):
                await self.runtime.run(request, executor)
        finally:
            progress.cancel()


async def _keep_alive(msg: Msg) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_SECONDS)
        with contextlib.suppress(nats.errors.Error):
            await msg.in_progress()
