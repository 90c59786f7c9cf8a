"""The ordered reader refuses to read across a gap that nats-py let through (a slow consumer's dropped messages)."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from shared.bus.ordered_reader import GapError, OrderedReader

pytestmark = pytest.mark.unit


def delivered(consumer: int, stream: int) -> Msg:
    return Msg(_client=None, subject="s", reply=f"$JS.ACK.S.C.1.{stream}.{consumer}.0.0", data=b"")  # type: ignore[arg-type]


async def test_messages_before_a_gap_are_read_then_the_gap_is_an_error() -> None:
    reader = OrderedReader()
    for consumer, stream in ((1, 10), (2, 12), (4, 15), (5, 16)):  # consumer sequence 3 was dropped
        await reader._receive(delivered(consumer, stream))
    assert [m.metadata.sequence.stream for m in await reader.batch(10, 0.1)] == [10, 12]
    with pytest.raises(GapError, match="after stream sequence 12"):
        await reader.batch(10, 0.1)


async def test_a_consumer_recreated_from_the_next_sequence_is_not_a_gap() -> None:
    reader = OrderedReader()
    for consumer, stream in ((1, 10), (2, 11), (1, 12), (2, 13)):  # nats-py re-created the consumer after 11
        await reader._receive(delivered(consumer, stream))
    assert [m.metadata.sequence.stream for m in await reader.batch(10, 0.1)] == [10, 11, 12, 13]
