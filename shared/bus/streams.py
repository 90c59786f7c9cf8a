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
    """JOBS (the event log, kept forever), EXECUTIONS (kept for the execution retention) and TASKS (a work queue: a
    task waits there until a worker acknowledges it, however long no worker runs)."""
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
    # Execution history goes after the retention (its age limit); a duplicate window may not exceed the age limit.
    max_age = settings.retention.stream_max_age
    executions = common | {"max_age": max_age}
    if max_age:
        executions["duplicate_window"] = min(settings.duplicate_window_seconds, max_age)
    return [
        StreamConfig(name=names.jobs_stream, subjects=[names.jobs_filter], **common),  # type: ignore[arg-type]
        StreamConfig(name=names.executions_stream, subjects=[names.executions_filter], **executions),  # type: ignore[arg-type]
        StreamConfig(
            name=names.tasks_stream,
            subjects=[names.tasks_filter],
            **(common | {"retention": RetentionPolicy.WORK_QUEUE}),  # type: ignore[arg-type]
        ),
    ]


async def ensure_streams(js: JetStreamContext, settings: Settings) -> list[str]:
    """Create missing streams and update drifted ones. Returns a line per change made."""
    changes: list[str] = []
    for wanted in stream_configs(settings):
        name = wanted.name
        if name is None:
            raise ValueError("a stream configuration without a name")
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(wanted)
            changes.append(f"created stream {name}")
            continue
        diffs = config_drift(wanted, info.config, _COMPARED)
        if diffs:
            await js.update_stream(wanted)
            changes.append(f"updated stream {name}: {', '.join(diffs)}")
    for line in changes:
        log.info(line)
    return changes


async def kv_bucket(
    js: JetStreamContext, settings: Settings, name: str, ttl: float | None = None, *, retimed: bool = False
) -> KeyValue:
    """A KV bucket (one value per key, file storage), created if missing. `retimed`: an existing bucket whose entries
    live longer or shorter than `ttl` is brought to it (the setting behind it changed since it was made)."""
    try:
        bucket = await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE, replicas=settings.stream_replicas, ttl=ttl)
        )
    if not retimed:
        return bucket
    config = (await js.stream_info(f"KV_{name}")).config
    if ttl is not None and config.max_age != ttl:
        log.info("bucket %s: its entries now live %g s (%s s before)", name, ttl, config.max_age)
        # JetStream refuses a duplicate window longer than the age limit (a bucket made with a short TTL has it so).
        window = min(config.duplicate_window or ttl, ttl)
        await js.update_stream(config.evolve(max_age=ttl, duplicate_window=window))
    return bucket


async def ticker_bucket(js: JetStreamContext, settings: Settings) -> KeyValue:
    """The ticker's KV bucket (watermarks, heartbeat)."""
    return await kv_bucket(js, settings, Names(settings.namespace).ticker_bucket)


# The bucket forgets entries much older than MAX_TIMER_DELAY_SECONDS: those are only the markers of fired timers.
TIMERS_TTL_SECONDS = 30 * 86400


async def timers_bucket(js: JetStreamContext, settings: Settings) -> KeyValue:
    """Durable timers (attempts due later): written by dispatchers and workers, fired by the ticker."""
    return await kv_bucket(js, settings, Names(settings.namespace).timers_bucket, ttl=TIMERS_TTL_SECONDS)
