"""The dispatcher's consumer on real NATS, and requests to feed it: for tests of how a consumer fetches, runs and
acknowledges."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import nats
from nats.js import JetStreamContext

from services.dispatcher.consumer_config import ensure_dispatcher_consumer
from shared.bus.streams import ensure_streams
from shared.contracts.executions import ExecutionRequested, occurrence_requests
from shared.contracts.jobs import WebhookSpec
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.factories import NOW, job_state


def request(n: int = 0) -> ExecutionRequested:
    """A request of a job due a second ago, to a receiver nobody listens on (the handler never calls it)."""
    job = job_state(
        webhooks=[WebhookSpec(id=uuid.uuid4(), url=f"http://127.0.0.1:9/{n}", created_at=NOW, updated_at=NOW)]
    )
    nominal = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    return occurrence_requests(job, job_version=1, nominal_time=nominal, occurred_at=nominal, next_run_at=None)[0]


@asynccontextmanager
async def dispatcher_subscription(
    settings: Settings,
) -> AsyncIterator[tuple[JetStreamContext, JetStreamContext.PullSubscription]]:
    """The streams and the dispatcher's consumer, bound to a pull subscription; the connection closed after."""
    names = Names(settings.namespace)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        await ensure_dispatcher_consumer(js, settings)
        yield js, await js.pull_subscribe_bind(names.dispatcher_consumer, stream=names.executions_stream)
    finally:
        await nc.close()
