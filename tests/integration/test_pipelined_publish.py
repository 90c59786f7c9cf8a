"""A pipelined batch on a real nats-server: stored in order, once, and a repeat of the batch stores nothing more."""

from __future__ import annotations

import uuid

import nats
import pytest
from nats.js.api import StreamConfig

from shared.bus.pipelined import BatchNotStored, Outgoing, publish_all

pytestmark = pytest.mark.integration


async def test_a_batch_is_stored_in_order_and_a_repeat_of_it_is_dropped(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        stream = f"PIPELINED_{uuid.uuid4().hex[:8]}"
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"], duplicate_window=60))
        batch = [Outgoing(f"{stream}.m{i % 7}", f"payload {i}".encode(), f"id-{i}") for i in range(1_500)]
        acks = await publish_all(js, batch)
        assert [a.seq for a in acks] == list(range(1, 1_501))
        assert not any(a.duplicate for a in acks)
        again = await publish_all(js, batch[100:200])
        assert [a.seq for a in again] == list(range(101, 201)) and all(a.duplicate for a in again)
        assert (await js.stream_info(stream)).state.messages == 1_500
        stored = [(await js.get_msg(stream, seq)).data for seq in range(1, 1_501)]
        assert stored == [m.payload for m in batch]
    finally:
        await nc.close()


async def test_messages_no_stream_takes_fail_the_batch_after_its_rounds(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        nowhere = [Outgoing(f"nowhere.{uuid.uuid4().hex}", b"x", "only")]
        with pytest.raises(BatchNotStored) as refused:
            await publish_all(js, nowhere, timeout=2)
        assert refused.value.missing == 1
    finally:
        await nc.close()
