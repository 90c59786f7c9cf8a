"""Running a Worker: one durable consumer per task name, shared by every process that runs the task."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import socket
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from shared.bus.connection import connect, disconnect
from shared.bus.consumers import ensure_consumer
from shared.bus.executions import publish_result
from shared.bus.failures import FailureFate, record_failure
from shared.bus.overlap import RunningRuns, publish_skipped, running_bucket, under_overlap_policy
from shared.bus.prioritized import PrioritizedConsumer, Slots
from shared.bus.streams import ensure_streams, timers_bucket
from shared.contracts.executions import (
    ExecutionFailed,
    ExecutionRequested,
    ExecutionStarted,
    ExecutionSucceeded,
    envelope_of,
)
from shared.contracts.subjects import Names
from shared.settings import Settings
from shared.worker.app import TaskFunction, Worker

log = logging.getLogger(__name__)

# A run is acknowledged only when its result is stored; until then the server must not hand it to another worker,
# so the ack wait outlasts the time limit, and long runs tell the server they are still going.
ACK_WAIT_MARGIN_SECONDS = 30.0
PROGRESS_EVERY_SECONDS = 10.0
_COMPARED = ("filter_subject", "ack_policy", "ack_wait", "max_deliver", "deliver_policy")


def _now() -> datetime:
    return datetime.now(UTC)


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
        self._timers: KeyValue | None = None
        self._runs: RunningRuns | None = None
        self.worker_id = f"{worker.name}@{socket.gethostname()}:{os.getpid()}"

    async def run(self, stop: asyncio.Event) -> None:
        if not self._worker.tasks:
            raise ValueError(f"worker {self._worker.name!r} has no tasks registered")
        nc = await connect(self._settings.nats_url, f"worker {self._worker.name}")
        try:
            js = nc.jetstream()
            await ensure_streams(js, self._settings)
            self._timers = await timers_bucket(js, self._settings)
            self._runs = RunningRuns(await running_bucket(js, self._settings))
            loops = []
            for task in self._worker.tasks.values():
                await ensure_task_consumer(js, self._names, task)
                loops.append(self._consume(js, task, stop))
            log.info("worker %s running %s", self.worker_id, ", ".join(sorted(self._worker.tasks)))
            await asyncio.gather(*loops)
        finally:
            await disconnect(nc)

    async def _consume(self, js: JetStreamContext, task: TaskFunction, stop: asyncio.Event) -> None:
        sub = await js.pull_subscribe_bind(self._names.task_consumer(task.name), stream=self._names.tasks_stream)
        consumer = PrioritizedConsumer(
            sub,
            functools.partial(self._handle, js, task),
            slots=self._slots,
            lookahead=self._worker.lookahead,
            ack_wait_seconds=task.timeout + ACK_WAIT_MARGIN_SECONDS,
        )
        try:
            await consumer.run(stop)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _handle(self, js: JetStreamContext, task: TaskFunction, request: ExecutionRequested, msg: Msg) -> None:
        if request.task is None:
            log.error("dropping execution %s on %s: it names no task", request.execution_id, msg.subject)
            return
        assert self._runs is not None
        await under_overlap_policy(
            self._runs,
            request,
            functools.partial(self._run, js, task, request, msg),
            functools.partial(publish_skipped, js, self._names, request),
            refresh_every=self._settings.ack_wait_seconds / 3,
        )

    async def _run(self, js: JetStreamContext, task: TaskFunction, request: ExecutionRequested, msg: Msg) -> None:
        assert request.task is not None
        base = str(request.execution_id)
        common = envelope_of(request)
        started_at = _now()
        started = ExecutionStarted(**common, occurred_at=started_at, worker_id=self.worker_id, started_at=started_at)
        await publish_result(js, self._names, "started", started, f"{base}:started")
        progress = asyncio.create_task(self._keep_alive(msg))
        try:
            outcome = await self._call(task, request)
        finally:
            progress.cancel()
        finished_at = _now()
        timing: dict[str, Any] = {
            "occurred_at": finished_at,
            "worker_id": self.worker_id,
            "started_at": started_at,
            "finished_at": finished_at,
            "duration_ms": int((finished_at - started_at).total_seconds() * 1000),
        }
        if isinstance(outcome, _Failure):
            failed = ExecutionFailed(
                **common, **timing, error=outcome.error, timed_out=outcome.timed_out, traceback=outcome.traceback
            )
            assert self._timers is not None
            await record_failure(js, self._names, self._timers, request, failed, FailureFate(), finished_at)
        else:
            succeeded = ExecutionSucceeded(**common, **timing, result=outcome.value)
            await publish_result(js, self._names, "succeeded", succeeded, f"{base}:result")

    async def _call(self, task: TaskFunction, request: ExecutionRequested) -> _Success | _Failure:
        assert request.task is not None
        args, kwargs = list(request.task.args), dict(request.task.kwargs)
        try:
            async with asyncio.timeout(task.timeout):
                if inspect.iscoroutinefunction(task.function):
                    value = await task.function(*args, **kwargs)
                else:
                    value = await asyncio.to_thread(task.function, *args, **kwargs)
        except TimeoutError:
            return _Failure(f"task did not finish within {task.timeout:g} s", timed_out=True)
        except Exception as exc:  # noqa: BLE001 - any failure of user code is the run's outcome
            return _Failure(f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        try:
            msgspec.json.encode(value)
        except (TypeError, msgspec.EncodeError) as exc:
            return _Failure(f"the task's result is not JSON: {exc}")
        return _Success(value)

    @staticmethod
    async def _keep_alive(msg: Msg) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_SECONDS)
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()


@dataclass(frozen=True, slots=True)
class _Success:
    value: Any


@dataclass(frozen=True, slots=True)
class _Failure:
    error: str
    timed_out: bool = False
    traceback: str | None = None
