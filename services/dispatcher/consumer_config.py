"""The dispatchers' shared durable pull consumers (requested executions, callbacks), created or brought back in
line at start-up."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.bus.consumers import ensure_consumer
from shared.contracts.subjects import Names
from shared.settings import Settings

_COMPARED = ("filter_subject", "ack_policy", "ack_wait", "max_ack_pending", "max_deliver", "deliver_policy")


def _durable(name: str, filter_subject: str, max_ack_pending: int, settings: Settings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=name,
        filter_subject=filter_subject,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_seconds,
        max_ack_pending=max_ack_pending,
        max_deliver=-1,
    )


def dispatcher_consumer_config(settings: Settings) -> ConsumerConfig:
    """Requested executions: in flight, waiting by priority, and held until their fire time."""
    names = Names(settings.namespace)
    return _durable(names.dispatcher_consumer, names.requested_filter, settings.max_ack_pending, settings)


def callback_consumer_config(settings: Settings) -> ConsumerConfig:
    """The dispatchers' second consumer: callbacks to send (their retries are timers, so only tries in flight are
    pending)."""
    names = Names(settings.namespace)
    return _durable(names.callback_consumer, names.callback_filter, settings.max_ack_pending, settings)


def waiting_consumer_config(settings: Settings) -> ConsumerConfig:
    """The dispatchers' third consumer: deliveries waiting for their flow-control key, handed back with a delay while
    it stays at its limit. Their own max ack pending, so waiting deliveries never hold up the requested ones."""
    names = Names(settings.namespace)
    return _durable(names.waiting_consumer, names.waiting_filter, settings.flow_max_waiting, settings)


async def ensure_dispatcher_consumer(js: JetStreamContext, settings: Settings) -> list[str]:
    """Create the consumers, or update one whose configuration drifted. Returns what was done, if anything."""
    stream = Names(settings.namespace).executions_stream
    done = []
    configs = (
        dispatcher_consumer_config(settings),
        callback_consumer_config(settings),
        waiting_consumer_config(settings),
    )
    for config in configs:
        if (line := await ensure_consumer(js, stream, config, _COMPARED)) is not None:
            done.append(line)
    return done
