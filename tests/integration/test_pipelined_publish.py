"""A pipelined batch on a real nats-server: stored in order, once, and a repeat of the batch stores nothing more."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig

from shared.bus.pipelined import AckedPublisher, BatchNotStored, Outgoing, publish_all

pytestmark = pytest.mark.integration


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.close()


async def test_a_batch_is_stored_in_order_and_a_repeat_of_it_is_dropped(nc: Client) -> None:
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


async def test_messages_no_stream_takes_fail_the_batch_once_its_time_is_up(nc: Client) -> None:
    js = nc.jetstream()
    nowhere = [Outgoing(f"nowhere.{uuid.uuid4().hex}", b"x", "only")]
    with pytest.raises(BatchNotStored) as refused:
        await publish_all(js, nowhere, timeout=2, within=1.5)
    assert refused.value.missing == 1
    # Refused at once ("no responders"), round after round, with pauses of 0.1, 0.2 and 0.4 s between them: not
    # given up after three quick tries as before.
    rounds = re.search(r"after (\d+) rounds", str(refused.value))
    assert rounds is not None and int(rounds.group(1)) == 4, str(refused.value)


async def test_a_batch_refused_for_a_while_is_stored_once_a_stream_answers(nc: Client) -> None:
    """As while a cluster elects a stream leader: no one answers the first rounds, then the stream does."""
    js = nc.jetstream()
    subject = f"later.{uuid.uuid4().hex}"
    batch = [Outgoing(subject, f"{i}".encode(), f"m{i}") for i in range(10)]
    publishing = asyncio.create_task(publish_all(js, batch, timeout=2, within=20))
    await asyncio.sleep(1.0)  # the time no stream answers: the rounds must go on through it
    assert not publishing.done(), "the batch was given up while no stream answered"
    stream = f"LATER_{uuid.uuid4().hex[:8]}"
    await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
    acks = await asyncio.wait_for(publishing, timeout=20)
    assert [a.seq for a in acks] == list(range(1, 11))
    assert (await js.stream_info(stream)).state.messages == 10
    await js.delete_stream(stream)


async def test_concurrent_single_publishes_get_their_own_acks_and_an_unanswered_one_times_out(nc: Client) -> None:
    js = nc.jetstream()
    stream = f"ACKED_{uuid.uuid4().hex[:8]}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"], duplicate_window=60))
    # Acks that come must be awaited patiently (a loaded CI box once took over 0.5 s for 300); only the one that
    # never comes is given a short time.
    publisher = AckedPublisher(js, timeout=10, sweep_every=0.05)
    messages = [Outgoing(f"{stream}.m", f"{i}".encode(), f"id-{i}") for i in range(300)]
    acks = await asyncio.gather(*(publisher.publish(m) for m in messages))
    assert sorted(a.seq for a in acks) == list(range(1, 301)) and not any(a.duplicate for a in acks)
    repeat = await publisher.publish(messages[7])
    assert repeat.duplicate and repeat.seq == acks[7].seq
    stored = {(await js.get_msg(stream, a.seq)).data for a in acks}
    assert stored == {m.payload for m in messages}

    # A subject someone listens on but no stream stores: the ack never comes.
    silent = await nc.subscribe(f"silent.{stream}")
    impatient = AckedPublisher(js, timeout=0.5, sweep_every=0.05)
    with pytest.raises(TimeoutError):
        await impatient.publish(Outgoing(f"silent.{stream}", b"x", "never acked"))
    await silent.unsubscribe()
    assert js.publish_async_pending() == 0, "a timed-out ack still holds its slot"
