"""The example subscriber (examples/failure_counter.py) against `scheduler dev`'s real NATS streams: it sees a
failing job's failed attempt and dead letter, and, its consumers being durable, what happened while it was stopped."""

from __future__ import annotations

import uuid

import nats
import pytest

from examples.failure_counter import KINDS, FailureBook, build
from tests.e2e.conftest import DevServer
from tests.e2e.harness import Api
from tests.e2e.test_delivery_retries import create_job, once_soon
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

ONCE = {"max_attempts": 1, "backoff_seconds": 1}


async def test_the_example_counts_failures_and_catches_up_after_a_restart(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.statuses["/down"] = 503
    durable = f"example_{uuid.uuid4().hex[:8]}"
    book = FailureBook()
    app = build(dev_server.nats_url, dev_server.namespace, book, durable=durable)
    await app.broker.start()
    try:
        job = await create_job(api, account_id, once_soon(5), retry_policy=ONCE,
                               webhooks=[{"url": receiver.url_for("/down")}])  # fmt: skip
        await eventually(lambda: book.dead_letters and book.failures, timeout=30, what="the failure and dead letter")
        assert book.failures == {uuid.UUID(job["id"]): 1}
        assert [str(d.job_id) for d in book.dead_letters] == [job["id"]]
    finally:
        await app.broker.stop()

    # Stopped: another job fails meanwhile. Started again (a new process would do the same), it gets that one.
    second = await create_job(api, account_id, once_soon(5), retry_policy=ONCE,
                              webhooks=[{"url": receiver.url_for("/down")}])  # fmt: skip
    await eventually(lambda: len(receiver.on("/down")) == 2, timeout=30, what="the second job's failed delivery")
    again = FailureBook()
    app = build(dev_server.nats_url, dev_server.namespace, again, durable=durable)
    await app.broker.start()
    try:
        # Each kind has a consumer of its own: the dead letter may be handled before the failed attempt.
        await eventually(lambda: again.dead_letters and again.failures, timeout=30,
                         what="the failed attempt and dead letter that came while it was stopped")  # fmt: skip
        assert again.failures == {uuid.UUID(second["id"]): 1}, "only what it had not acknowledged"
        assert [str(d.job_id) for d in again.dead_letters] == [second["id"]]
    finally:
        await app.broker.stop()

    # Its consumers are durable ones on the scheduler's stream, named after it.
    nc = await nats.connect(dev_server.nats_url)
    try:
        js = nc.jetstream()
        stream = f"{dev_server.namespace.upper()}_EXECUTIONS"
        for kind in KINDS:
            info = await js.consumer_info(stream, f"{durable}_{kind}")
            assert info.config.durable_name == f"{durable}_{kind}" and info.num_ack_pending == 0
            await js.delete_consumer(stream, f"{durable}_{kind}")
    finally:
        await nc.close()
