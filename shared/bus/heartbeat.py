"""Reading the ticker's heartbeat (the api's readiness check and `scheduler status` both show it)."""

from __future__ import annotations

import msgspec
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from shared.contracts.ticker import HEARTBEAT_KEY, Heartbeat


async def latest_heartbeat(bucket: KeyValue) -> Heartbeat | None:
    """The last heartbeat a ticker wrote to its bucket, or None if none ever did."""
    try:
        entry = await bucket.get(HEARTBEAT_KEY)
    except (KeyNotFoundError, KeyDeletedError):
        return None
    return msgspec.json.decode(entry.value, type=Heartbeat) if entry.value else None
