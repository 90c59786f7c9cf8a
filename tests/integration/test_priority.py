"""Priority reorders a backlog: a dispatcher and a worker start the highest-priority waiting execution first.

Each test holds the only slot with a first execution, queues ten more behind it, waits until the consumer has handed
the process its window of them, then frees the slot and records the order they run in.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.dispatcher.consumer_config import ensure_dispatcher_consumer
from services.dispatcher.service import open_dispatcher
from shared.bus.executions import hand_over_task, publish_requested
from shared.bus.streams import ensure_streams
from shared.contracts.executions import ExecutionRequested, occurrence_requests
from shared.contracts.jobs import TaskSpec, WebhookSpec
from shared.contracts.subjects import Names
from shared.settings import Settings
from shared.worker import Worker
from tests.factories import NOW, job_state
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.integration

# Queued in this order behind the first execution.
PRIORITIES = [3, 9, 5, 1, 10, 5, 7, 2, 8, 4]
BY_PRIORITY = [p for _, p in sorted(enumerate(PRIORITIES), key=lambda item: (-item[1], item[0]))]


def request(priority: int, *, url: str | None = None, task: TaskSpec | None = None) -> ExecutionRequested:
    webhooks = [] if url is None else [WebhookSpec(id=uuid.uuid4(), url=url, created_at=NOW, updated_at=NOW)]
    job = job_state(priority=priority, webhooks=webhooks, task=task)
    nominal = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    return occurrence_requests(job, job_version=1, nominal_time=nominal, occurred_at=nominal, next_run_at=None)[0]


@asynccontextmanager
async def bus(settings: Settings) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        yield js
    finally:
        await nc.close()


@asynccontextmanager
async def running(run: Callable[[asyncio.Event], Any]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def handed_out(js: JetStreamContext, stream: str, consumer: str, count: int) -> None:
    async def check() -> bool:
        try:
            info = await js.consumer_info(stream, consumer)
        except NotFoundError:
            return False
        return info.num_ack_pending == count

    await eventually(check, timeout=10, what=f"{count} messages handed to the process")


@pytest.mark.parametrize(("lookahead", "expected"), [(256, BY_PRIORITY), (0, PRIORITIES)])
async def test_a_dispatcher_delivers_its_backlog_highest_priority_first(
    settings: Settings, receiver: Receiver, lookahead: int, expected: list[int]
) -> None:
    """With no lookahead window the dispatcher takes the stream's order, which shows what the window changes."""
    settings = settings.replaced(dispatcher_concurrency=1, dispatch_lookahead=lookahead)
    names = Names(settings.namespace)
    receiver.gates["/first"] = release = asyncio.Event()
    async with bus(settings) as js:
        await ensure_dispatcher_consumer(js, settings)
        async with open_dispatcher(settings) as dispatcher, running(dispatcher.run):
            await publish_requested(js, names, request(1, url=receiver.url_for("/first")))
            await eventually(lambda: receiver.calls, timeout=10, what="the first delivery to take the only slot")
            for priority in PRIORITIES:
                await publish_requested(js, names, request(priority, url=receiver.url_for(f"/p{priority}")))
            await handed_out(js, names.executions_stream, names.dispatcher_consumer, 1 + min(lookahead, 10))
            release.set()
            await eventually(lambda: len(receiver.calls) == 1 + len(PRIORITIES), timeout=20, what="every delivery")
    assert [c.path for c in receiver.calls] == ["/first"] + [f"/p{p}" for p in expected]


async def test_a_worker_runs_its_backlog_highest_priority_first(settings: Settings) -> None:
    names = Names(settings.namespace)
    worker = Worker("priorities", concurrency=1, lookahead=20)
    release = asyncio.Event()
    ran: list[int] = []

    @worker.task("tests.priority")
    async def record(priority: int) -> None:
        ran.append(priority)
        if not release.is_set() and len(ran) == 1:
            await release.wait()

    def task_request(priority: int) -> ExecutionRequested:
        return request(priority, task=TaskSpec(name="tests.priority", args=(priority,)))

    async with bus(settings) as js, running(lambda stop: worker.run(settings, stop)):
        consumer = names.task_consumer("tests.priority")
        await handed_out(js, names.tasks_stream, consumer, 0)
        await hand_over_task(js, names, task_request(1))
        await handed_out(js, names.tasks_stream, consumer, 1)
        for priority in PRIORITIES:
            await hand_over_task(js, names, task_request(priority))
        await handed_out(js, names.tasks_stream, consumer, 1 + len(PRIORITIES))
        release.set()
        await eventually(lambda: len(ran) == 1 + len(PRIORITIES), timeout=20, what="every task run")
    assert ran == [1, *BY_PRIORITY]
