"""Connecting to NATS with the options every service uses."""

from __future__ import annotations

import logging

import nats
import nats.errors
from nats.aio.client import Client

log = logging.getLogger(__name__)

# What a call to NATS raises when the bus is away or slow (a loop retries these; anything else is a bug).
BUS_ERRORS: tuple[type[Exception], ...] = (nats.errors.Error, TimeoutError)


def servers(url: str) -> list[str]:
    """The servers of a NATS URL: one, or a cluster's as a comma-separated list (as NATS_URL takes them)."""
    return [part.strip() for part in url.split(",") if part.strip()]


async def connect(url: str, name: str) -> Client:
    """Connect with unbounded reconnects; the first connection must succeed within a few seconds. `url` may list a
    cluster's servers (comma-separated): any that answers will do, and a lost one is replaced by another."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error (%s): %s", name, exc)

    return await nats.connect(
        servers(url),
        name=name,
        connect_timeout=5,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        allow_reconnect=True,
        error_cb=on_error,
    )


async def disconnect(nc: Client) -> None:
    """Drain when connected (flushes what is pending); close when not, so a stop never fails for NATS being down."""
    if nc.is_closed:
        return
    if nc.is_connected:
        try:
            await nc.drain()
            return
        except (nats.errors.Error, OSError) as exc:
            log.warning("drain failed, closing: %s", exc)
    try:
        await nc.close()
    except OSError as exc:  # the socket was already gone; nothing is left to flush
        log.warning("closed a lost NATS connection: %s", exc)
