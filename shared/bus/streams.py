"""Streams are created or verified at start-up from explicit settings; drift is updated, never silently kept."""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from shared.bus.config_drift import config_drift
from shared.contracts.subjects import Names
from shared.settings import Settings

log = logging.getLogger(__name__)

# Fields we own on a stream; anything else the server fills in is not compared.
_COMPARED = (
    "subjects",
    "retention",
    "storage",
    "num_replicas",
    "duplicate_window",
    "discard",
    "max_age",
    "allow_direct",
)


def stream_configs(settings: Settings) -> list[StreamConfig]:
    """The two streams: JOBS (the event log, kept forever) and EXECUTIONS (kept forever for now)."""
    names = Names(settings.namespace)
    common = {
        "retention": RetentionPolicy.LIMITS,
        "storage": StorageType.FILE,
        "num_replicas": settings.stream_replicas,
        "duplicate_window": settings.duplicate_window_seconds,
        "discard": DiscardPolicy.OLD,
        "max_age": 0.0,
        "allow_direct": True,
    }
    return [
        StreamConfig(name=names.jobs_stream, subjects=[names.jobs_filter], **common),  # type: ignore[arg-type]
        StreamConfig(name=names.executions_stream, subjects=[names.executions_filter], **common),  # type: ignore[arg-type]
    ]


async def ensure_streams(js: JetStreamContext, settings: Settings) -> list[str]:
    """Create missing streams and update drifted ones. Returns a line per change made."""
    changes: list[str] = []
    for wanted in stream_configs(settings):
        assert wanted.name is not None
        try:
            info = await js.stream_info(wanted.name)
        except NotFoundError:
            await js.add_stream(wanted)
            changes.append(f"created stream {wanted.name}")
            continue
        diffs = config_drift(wanted, info.config, _COMPARED)
        if diffs:
            await js.update_stream(wanted)
            changes.append(f"updated stream {wanted.name}: {', '.join(diffs)}")
    for line in changes:
        log.info(line)
    return changes


async def ticker_bucket(js: JetStreamContext, settings: Settings) -> KeyValue:
    """The ticker's KV bucket (watermarks, heartbeat), created if missing."""
    name = Names(settings.namespace).ticker_bucket
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE, replicas=settings.stream_replicas)
        )
