"""The durable consumer of results that may fire chained jobs (see services/projector/chain_runner.py), created by
the dispatchers and the projectors alike."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.bus.consumers import ensure_consumer
from shared.contracts.subjects import Names
from shared.settings import Settings


def chain_consumer_config(settings: Settings) -> ConsumerConfig:
    """Results that may fire a chain: successes and dead letters published from its creation on (the dispatcher
    creates it before it publishes any result, so none is missed; history from before chains existed is not walked)."""
    names = Names(settings.namespace)
    return ConsumerConfig(
        durable_name=names.chain_consumer,
        filter_subjects=[f"{names.namespace}.executions.{kind}.>" for kind in ("succeeded", "dead_lettered")],
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_seconds,
        max_ack_pending=1024,
        max_deliver=-1,
    )


async def ensure_chain_consumer(js: JetStreamContext, settings: Settings) -> str | None:
    config = chain_consumer_config(settings)
    compared = ("filter_subjects", "ack_policy", "ack_wait", "max_ack_pending", "deliver_policy")
    return await ensure_consumer(js, Names(settings.namespace).executions_stream, config, compared)
