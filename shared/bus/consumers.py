"""Durable consumers created at start-up, or brought back in line when their configuration drifted."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError

from shared.bus.config_drift import config_drift

log = logging.getLogger(__name__)


async def ensure_consumer(
    js: JetStreamContext, stream: str, wanted: ConsumerConfig, compared: Iterable[str]
) -> str | None:
    """Create the durable consumer, or update it when a `compared` field drifted. Returns what was done, if
    anything (nats-py's pull_subscribe creates a missing consumer but never updates one)."""
    name = wanted.durable_name
    if name is None:
        raise ValueError("ensure_consumer keeps durable consumers only: the configuration names none")
    try:
        info = await js.consumer_info(stream, name)
    except NotFoundError:
        await js.add_consumer(stream, wanted)
        return f"created consumer {name}"
    diffs = config_drift(wanted, info.config, compared)
    if not diffs:
        return None
    # The server updates a durable in place when it is created again with the same name.
    await js.add_consumer(stream, wanted)
    line = f"updated consumer {name}: {', '.join(diffs)}"
    log.warning(line)
    return line
