"""A consumer's acks go out together, and none is left behind when it stops.

A run's ack waits for others (`ack_every`) so a burst's acks leave in a few writes. An ack still waiting when the
consumer stops must go out then: left unsent, the request would come back after the ack wait and run again.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.aio.msg import Msg

from shared.bus.executions import publish_requested
from shared.bus.prioritized import PrioritizedConsumer, Slots
from shared.contracts.executions import ExecutionRequested
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.consumers import dispatcher_subscription, request
from tests.waiting import eventually

pytestmark = pytest.mark.integration

COUNT = 30


@pytest.mark.parametrize("ack_every", [0.005, 3600.0])
async def test_every_run_is_acked_while_running_or_at_stop(settings: Settings, ack_every: float) -> None:
    """With a short interval the acks go out while the consumer runs; with one longer than the test, they can only
    have gone out at stop. Either way the consumer ends with nothing pending, and nothing ran twice."""
    names = Names(settings.namespace)
    ran: list[uuid.UUID] = []
    async with dispatcher_subscription(settings) as (js, sub):

        async def handle(request: ExecutionRequested, _msg: Msg) -> None:
            ran.append(request.execution_id)

        consumer = PrioritizedConsumer(
            sub, handle, slots=Slots(8), lookahead=16, ack_wait_seconds=settings.ack_wait_seconds, ack_every=ack_every
        )
        stop = asyncio.Event()
        running = asyncio.create_task(consumer.run(stop))
        for n in range(COUNT):
            await publish_requested(js, names, request(n))
        await eventually(lambda: len(ran) == COUNT, timeout=20, what="every request run")

        async def nothing_pending() -> bool | None:
            info = await js.consumer_info(names.executions_stream, names.dispatcher_consumer)
            return info.num_ack_pending == 0 or None

        if ack_every < 1:
            await eventually(nothing_pending, timeout=10, what="the acks sent while running")
        else:
            assert not await nothing_pending(), "acks went out before their interval"
        stop.set()
        await asyncio.wait_for(running, timeout=20)
        await sub.unsubscribe()

        async def all_acked() -> bool | None:
            # The server applies acks apart from answering requests: an ack sent may show a moment later. An ack
            # never sent leaves the floor behind what was delivered even once its wait expires.
            info = await js.consumer_info(names.executions_stream, names.dispatcher_consumer)
            return (info.num_ack_pending == 0 and info.ack_floor.stream_seq == info.delivered.stream_seq) or None

        await eventually(all_acked, timeout=10, what="every run acked")
        info = await js.consumer_info(names.executions_stream, names.dispatcher_consumer)
        assert info.num_redelivered == 0, "a request came back"
        assert len(set(ran)) == COUNT, "a request ran twice"
