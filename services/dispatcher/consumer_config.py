"""The dispatchers' shared durable pull consumer, created or brought back in line at start-up."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from shared.bus.config_drift import config_drift
from shared.contracts.subjects import Names
from shared.settings import Settings

log = logging.getLogger(__name__)

_COMPARED = ("filter_subject", "ack_policy", "ack_wait", "max_ack_pending", "max_deliver", "deliver_policy")


def dispatcher_consumer_config(settings: Settings) -> ConsumerConfig:
    names = Names(settings.namespace)
    return ConsumerConfig(
        durable_name=names.dispatcher_consumer,
        filter_subject=names.requested_filter,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_seconds,
        max_ack_pending=settings.max_ack_pending,
        max_deliver=-1,
    )


async def ensure_dispatcher_consumer(js: JetStreamContext, settings: Settings) -> str | None:
    """Create the consumer, or update it when its configuration drifted. Returns what was done, if anything."""
    wanted = dispatcher_consumer_config(settings)
    stream = Names(settings.namespace).executions_stream
    assert wanted.durable_name is not None
    try:
        info = await js.consumer_info(stream, wanted.durable_name)
    except NotFoundError:
        await js.add_consumer(stream, wanted)
        return f"created consumer {wanted.durable_name}"
    diffs = config_drift(wanted, info.config, _COMPARED)
    if not diffs:
        return None
    # The server updates a durable in place when it is created again with the same name.
    await js.add_consumer(stream, wanted)
    line = f"updated consumer {wanted.durable_name}: {', '.join(diffs)}"
    log.warning(line)
    return line
