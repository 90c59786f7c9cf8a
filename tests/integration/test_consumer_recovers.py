"""A consumer keeps fetching through the server's errors.

When nats-server restarts, a fetch can meet JetStream not yet ready, and an operator may delete and recreate a
consumer: the server answers those fetches with an error status (503) rather than a timeout. A worker is a long-lived
process nobody restarts with the server, so its consumer must fetch again once the server answers, not stop for
good with the process still up.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from nats.aio.msg import Msg

from services.dispatcher.consumer_config import ensure_dispatcher_consumer
from shared.bus.executions import publish_requested
from shared.bus.prioritized import PrioritizedConsumer, Slots
from shared.contracts.executions import ExecutionRequested
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.consumers import dispatcher_subscription, request
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def test_a_consumer_fetches_again_after_the_server_refused_a_fetch(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    names = Names(settings.namespace)
    ran: list[uuid.UUID] = []
    async with dispatcher_subscription(settings) as (js, sub):

        async def handle(request: ExecutionRequested, _msg: Msg) -> None:
            ran.append(request.execution_id)

        consumer = PrioritizedConsumer(
            sub, handle, slots=Slots(4), lookahead=4, ack_wait_seconds=settings.ack_wait_seconds
        )
        stop = asyncio.Event()
        running = asyncio.create_task(consumer.run(stop))
        first = request()
        await publish_requested(js, names, first)
        await eventually(lambda: ran == [first.execution_id], timeout=10, what="the first request run")

        with caplog.at_level(logging.WARNING, logger="shared.bus.prioritized"):
            await js.delete_consumer(names.executions_stream, names.dispatcher_consumer)
            await eventually(
                lambda: any("fetching requests failed" in r.getMessage() for r in caplog.records),
                timeout=10,
                what="a fetch refused while the consumer is gone",
            )
        assert not running.done(), "the consumer stopped on the server's error"
        await ensure_dispatcher_consumer(js, settings)
        second = request()
        await publish_requested(js, names, second)
        await eventually(lambda: second.execution_id in ran, timeout=10, what="a request run after the error")
        stop.set()
        await asyncio.wait_for(running, timeout=20)
        await sub.unsubscribe()
