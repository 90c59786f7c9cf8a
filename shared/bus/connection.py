"""Connecting to NATS with the options every service uses."""

from __future__ import annotations

import asyncio
import logging
import weakref

import nats
import nats.errors
from nats.aio.client import Client

log = logging.getLogger(__name__)

# A server that stops answering without closing the connection (frozen, or cut off by a partition) is given up after
# this many pings unanswered, this far apart, and the client moves to another server of its list. nats-py's default
# (two minutes apart) left a service talking to a frozen server for minutes.
PING_INTERVAL_SECONDS = 2
MAX_OUTSTANDING_PINGS = 2

# What a call to NATS raises when the bus is away or slow (a loop retries these; anything else is a bug).
BUS_ERRORS: tuple[type[Exception], ...] = (nats.errors.Error, TimeoutError)


def servers(url: str) -> list[str]:
    """The servers of a NATS URL: one, or a cluster's as a comma-separated list (as NATS_URL takes them)."""
    return [part.strip() for part in url.split(",") if part.strip()]


# A future per client, resolved at its next reconnect (see next_reconnect).
_NEXT_RECONNECT: weakref.WeakKeyDictionary[Client, asyncio.Future[None]] = weakref.WeakKeyDictionary()


def next_reconnect(nc: Client) -> asyncio.Future[None]:
    """A future resolved when `nc` next reconnects (to any server of its list); never, for a client `connect` did not
    make. Shared by every caller: do not cancel it."""
    future = _NEXT_RECONNECT.get(nc)
    if future is None or future.done():
        future = _NEXT_RECONNECT[nc] = asyncio.get_running_loop().create_future()
    return future


async def connect(url: str, name: str) -> Client:
    """Connect with unbounded reconnects; the first connection must succeed within a few seconds. `url` may list a
    cluster's servers (comma-separated): any that answers will do, and a lost one is replaced by another."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error (%s): %s", name, exc)

    made: list[Client] = []

    async def on_reconnected() -> None:
        if made and (future := _NEXT_RECONNECT.pop(made[0], None)) is not None and not future.done():
            future.set_result(None)

    nc = await nats.connect(
        servers(url),
        name=name,
        connect_timeout=5,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        ping_interval=PING_INTERVAL_SECONDS,
        max_outstanding_pings=MAX_OUTSTANDING_PINGS,
        allow_reconnect=True,
        error_cb=on_error,
        reconnected_cb=on_reconnected,
    )
    made.append(nc)
    return nc


async def disconnect(nc: Client) -> None:
    """Drain when connected (flushes what is pending); close when not, so a stop never fails for NATS being down."""
    if nc.is_closed:
        return
    if nc.is_connected:
        try:
            await nc.drain()
            return
        except (nats.errors.Error, OSError, RuntimeError) as exc:
            log.warning("drain failed, closing: %s", exc)
    try:
        await nc.close()
    except (OSError, RuntimeError) as exc:
        # The socket was already gone; nothing is left to flush. nats-py still writes its pending buffer to the
        # closed transport: asyncio's ignores that, uvloop's raises RuntimeError.
        log.warning("closed a lost NATS connection: %s", exc)
