"""Streams and the dispatcher consumer are created from settings, and drift is corrected at start-up."""

from __future__ import annotations

import nats
import pytest
from nats.js.api import RetentionPolicy, StreamConfig

from services.dispatcher.consumer_config import ensure_dispatcher_consumer
from shared.bus.overlap import running_bucket
from shared.bus.streams import ensure_streams, stream_configs
from shared.contracts.subjects import Names
from shared.settings import Settings

pytestmark = pytest.mark.integration


async def test_streams_are_created_then_left_alone(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    try:
        names = Names(settings.namespace)
        first = await ensure_streams(js, settings)
        streams = (names.jobs_stream, names.executions_stream, names.tasks_stream)
        assert first == [f"created stream {n}" for n in streams]
        assert await ensure_streams(js, settings) == []
        info = await js.stream_info(names.jobs_stream)
        assert info.config.duplicate_window == settings.duplicate_window_seconds
        tasks = await js.stream_info(names.tasks_stream)
        assert tasks.config.retention == RetentionPolicy.WORK_QUEUE
    finally:
        await nc.close()


async def test_drifted_stream_is_updated(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    try:
        await ensure_streams(js, settings)
        jobs = stream_configs(settings)[0]
        assert jobs.name is not None
        drifted = StreamConfig.from_response(jobs.as_dict())
        drifted.duplicate_window = 30.0
        await js.update_stream(drifted)
        changes = await ensure_streams(js, settings)
        assert len(changes) == 1 and "duplicate_window" in changes[0]
        assert (await js.stream_info(jobs.name)).config.duplicate_window == settings.duplicate_window_seconds
    finally:
        await nc.close()


async def test_drifted_consumer_is_updated(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    try:
        await ensure_streams(js, settings)
        created = await ensure_dispatcher_consumer(js, settings)
        assert len(created) == 3 and all(line.startswith("created") for line in created), created
        assert await ensure_dispatcher_consumer(js, settings) == []
        changed = settings.replaced(max_ack_pending=500)
        lines = await ensure_dispatcher_consumer(js, changed)
        # The waiting consumer's max ack pending is SCHEDULER_FLOW_MAX_WAITING: it stays.
        assert len(lines) == 2 and all("max_ack_pending" in line for line in lines), lines
        names = Names(settings.namespace)
        for consumer in (names.dispatcher_consumer, names.callback_consumer):
            info = await js.consumer_info(names.executions_stream, consumer)
            assert info.config.max_ack_pending == 500
    finally:
        await nc.close()


async def test_the_overlap_claims_bucket_follows_the_ack_wait(settings: Settings) -> None:
    """A store made when the ack wait was 150 s: its claims would outlive a dead dispatcher's runs that long."""
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    try:
        stream = f"KV_{Names(settings.namespace).running_bucket}"
        await running_bucket(js, settings.replaced(ack_wait_seconds=150))
        assert (await js.stream_info(stream)).config.max_age == 150
        await running_bucket(js, settings.replaced(ack_wait_seconds=8))
        assert (await js.stream_info(stream)).config.max_age == 8
    finally:
        await nc.close()
