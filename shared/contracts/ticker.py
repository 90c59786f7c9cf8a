"""What the ticker keeps in its KV bucket, read by others (the api's health check, operators' tools)."""

from __future__ import annotations

from datetime import datetime

import msgspec

# Before partitions, one watermark for the whole store; read as the fallback of every partition's.
WATERMARK_KEY = "watermark"
HEARTBEAT_KEY = "heartbeat"
# The ticker writes its heartbeat every second; older than this, it is taken for stopped.
HEARTBEAT_STALE_SECONDS = 10.0


def watermark_key(partition: int) -> str:
    """Up to when every occurrence of the partition's jobs has been published."""
    return f"watermark.{partition}"


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """What the ticker writes to its bucket so others can tell it is alive."""

    instance: str
    at: datetime
    watermark: datetime
    jobs: int
