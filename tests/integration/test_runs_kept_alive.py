"""A run that lasts longer than the consumer's ack wait is not handed to anyone else, also while its process stops.

The dispatcher's ack wait is short (SCHEDULER_ACK_WAIT_SECONDS, 8 s by default) so that what a dead dispatcher held
or was delivering comes back within seconds; a live one keeps each message it is running alive. Real NATS, the
dispatcher's consumer with a 1 s ack wait, a run that takes four of them.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.bus.executions import publish_requested
from shared.bus.prioritized import PrioritizedConsumer, Slots
from shared.contracts.executions import ExecutionRequested
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.consumers import dispatcher_subscription, request
from tests.waiting import eventually

pytestmark = pytest.mark.integration

ACK_WAIT = 1.0
RUN_SECONDS = 4 * ACK_WAIT


async def consumer_state(js: JetStreamContext, names: Names) -> tuple[int, int]:
    """The dispatcher consumer's (messages redelivered, messages awaiting their ack)."""
    info = await js.consumer_info(names.executions_stream, names.dispatcher_consumer)
    return int(info.num_redelivered or 0), int(info.num_ack_pending or 0)


@pytest.mark.parametrize("stopped_mid_run", [False, True], ids=["running", "stopping"])
async def test_a_run_longer_than_the_ack_wait_is_delivered_once(settings: Settings, stopped_mid_run: bool) -> None:
    settings = settings.replaced(ack_wait_seconds=ACK_WAIT)
    names = Names(settings.namespace)
    calls: list[uuid.UUID] = []
    release = asyncio.Event()
    async with dispatcher_subscription(settings) as (js, sub):

        async def handle(req: ExecutionRequested, _msg: Msg) -> None:
            calls.append(req.execution_id)
            await release.wait()

        consumer = PrioritizedConsumer(sub, handle, slots=Slots(4), lookahead=4, ack_wait_seconds=ACK_WAIT)
        stop = asyncio.Event()
        running = asyncio.create_task(consumer.run(stop))
        # A second consumer on the same durable, as a second dispatcher replica: it gets whatever is redelivered.
        async with dispatcher_subscription(settings) as (_js, other_sub):
            other = PrioritizedConsumer(other_sub, handle, slots=Slots(4), lookahead=4, ack_wait_seconds=ACK_WAIT)
            other_stop = asyncio.Event()
            other_running = asyncio.create_task(other.run(other_stop))
            the_request = request()
            await publish_requested(js, names, the_request)
            await eventually(lambda: calls == [the_request.execution_id], timeout=10, what="the run to start")
            if stopped_mid_run:
                stop.set()  # the run in flight finishes before the consumer returns
            # Asserting an absence: nothing can be awaited but the time in which a redelivery would have come.
            await asyncio.sleep(RUN_SECONDS)
            assert calls == [the_request.execution_id], "the running message was redelivered"
            assert await consumer_state(js, names) == (0, 1)
            release.set()

            async def acked() -> bool:
                return await consumer_state(js, names) == (0, 0)

            await eventually(acked, timeout=10, what="the run acknowledged, never redelivered")
            other_stop.set()
            await asyncio.wait_for(other_running, timeout=10)
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    assert calls == [the_request.execution_id]


async def test_messages_taken_within_a_third_of_the_ack_wait_cost_no_in_progress(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held messages (published ahead of their time, as the ticker's fire lead does) that are released and run
    within a third of the ack wait are never kept alive: at 1,000 executions a second, telling the server of every
    message in hand at each look cost hundreds of in_progress a second. Three groups held 0.6 s, published 0.3 s
    apart, are in hand across more than a whole keep-alive period (1 s), so a keeper that spoke of everything in
    hand at each look would have spoken of one group at least; one that speaks only of messages unheard of for a
    period says nothing."""
    ack_wait, hold = 3.0, 0.6
    settings = settings.replaced(ack_wait_seconds=ack_wait)
    names = Names(settings.namespace)
    said: list[str] = []
    in_progress = Msg.in_progress

    async def counted(msg: Msg) -> None:
        said.append(msg.subject)
        await in_progress(msg)

    monkeypatch.setattr(Msg, "in_progress", counted)
    handled: list[uuid.UUID] = []

    async def handle(req: ExecutionRequested, _msg: Msg) -> None:
        handled.append(req.execution_id)

    async with dispatcher_subscription(settings) as (js, sub):
        consumer = PrioritizedConsumer(
            sub, handle, slots=Slots(64), lookahead=64, ack_wait_seconds=ack_wait, max_hold_seconds=hold
        )
        stop = asyncio.Event()
        running = asyncio.create_task(consumer.run(stop))
        for _ in range(3):
            for n in range(10):
                ahead = msgspec.structs.replace(request(n), fire_at=datetime.now(UTC) + timedelta(seconds=hold))
                await publish_requested(js, names, ahead)
            await asyncio.sleep(0.3)  # the groups' holds overlap, together covering more than a keep-alive period
        await eventually(lambda: len(handled) == 30, timeout=10, what="the 30 held messages run")

        async def acked() -> bool:
            return await consumer_state(js, names) == (0, 0)

        await eventually(acked, timeout=10, what="all acknowledged")
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    assert said == [], f"{len(said)} in_progress for messages taken within a third of the ack wait"
