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
from datetime import UTC, datetime, timedelta

import nats
import pytest
from nats.aio.msg import Msg

from services.dispatcher.consumer_config import ensure_dispatcher_consumer
from shared.bus.executions import publish_requested
from shared.bus.prioritized import PrioritizedConsumer, Slots
from shared.bus.streams import ensure_streams
from shared.contracts.executions import ExecutionRequested, occurrence_requests
from shared.contracts.jobs import WebhookSpec
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.factories import NOW, job_state
from tests.waiting import eventually

pytestmark = pytest.mark.integration


def request() -> ExecutionRequested:
    job = job_state(webhooks=[WebhookSpec(id=uuid.uuid4(), url="http://127.0.0.1:9/", created_at=NOW, updated_at=NOW)])
    nominal = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    return occurrence_requests(job, job_version=1, nominal_time=nominal, occurred_at=nominal, next_run_at=None)[0]


async def test_a_consumer_fetches_again_after_the_server_refused_a_fetch(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    names = Names(settings.namespace)
    nc = await nats.connect(settings.nats_url)
    ran: list[uuid.UUID] = []
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        await ensure_dispatcher_consumer(js, settings)
        sub = await js.pull_subscribe_bind(names.dispatcher_consumer, stream=names.executions_stream)

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
    finally:
        await nc.close()
