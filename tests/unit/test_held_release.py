"""Held requests never leave before their fire time on the wall clock, even when the loop's timer releases them a
little early (uvloop's timers count whole milliseconds); a ticker's clock far ahead is still not waited out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from shared.bus.prioritized import PrioritizedConsumer, Slots
from shared.contracts.executions import occurrence_requests
from tests.factories import NOW, job_state
from tests.waiting import eventually

pytestmark = pytest.mark.unit


async def _nothing(*_: Any) -> None:
    return None


def _held_at(consumer: PrioritizedConsumer, fire_at: datetime) -> float:
    """A request held for `fire_at`, whose timer has just fired: the instant it was held for."""
    request = occurrence_requests(job_state(), job_version=1, nominal_time=NOW, occurred_at=NOW, next_run_at=None)[0]
    request = msgspec.structs.replace(request, fire_at=fire_at, execution_id=uuid.uuid4())
    msg = SimpleNamespace(metadata=SimpleNamespace(sequence=SimpleNamespace(stream=1)))
    loop = asyncio.get_running_loop()
    instant = loop.time()
    consumer._held[instant] = (loop.call_later(3600, lambda: None), [(request, msg)])  # type: ignore[list-item]
    return instant


async def test_released_a_little_early_they_are_held_until_the_wall_clock_gets_there() -> None:
    consumer = PrioritizedConsumer(None, _nothing, slots=Slots(1), lookahead=1, ack_wait_seconds=9)  # type: ignore[arg-type]
    fire_at = datetime.now(UTC) + timedelta(milliseconds=20)
    consumer._release(_held_at(consumer, fire_at))
    assert len(consumer._waiting) == 0, "released before its fire time"
    await eventually(lambda: len(consumer._waiting) == 1, timeout=5, what="the request released")
    assert datetime.now(UTC) >= fire_at


async def test_a_fire_time_far_ahead_is_not_waited_out() -> None:
    consumer = PrioritizedConsumer(None, _nothing, slots=Slots(1), lookahead=1, ack_wait_seconds=9)  # type: ignore[arg-type]
    consumer._release(_held_at(consumer, datetime.now(UTC) + timedelta(seconds=30)))
    assert len(consumer._waiting) == 1
