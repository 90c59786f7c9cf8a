"""The periodic-loop helper behind lease renewals and state saves: its timing, its stop, its error policy."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from shared.runtime.periodic import pause, periodically
from tests.waiting import eventually

pytestmark = pytest.mark.unit

EVERY = 0.05
LONG = 60.0  # an interval no test waits out: a loop that slept past its stop would time the test out


async def test_steps_run_one_interval_apart_after_a_first_interval() -> None:
    stop = asyncio.Event()
    started = time.monotonic()
    ran: list[float] = []

    async def step() -> None:
        ran.append(time.monotonic())
        if len(ran) == 3:
            stop.set()

    await asyncio.wait_for(periodically(step, EVERY, stop, what="step"), 5)
    assert len(ran) == 3, "the loop ends once stop is set"
    assert ran[0] - started >= EVERY * 0.9, "the first step waits one interval"
    assert all(b - a >= EVERY * 0.9 for a, b in itertools.pairwise(ran)), ran


async def test_immediately_takes_the_first_step_at_once() -> None:
    stop = asyncio.Event()
    ran = 0

    async def step() -> None:
        nonlocal ran
        ran += 1
        stop.set()

    await asyncio.wait_for(periodically(step, LONG, stop, what="step", immediately=True), 5)
    assert ran == 1


async def test_stop_ends_the_wait_between_steps_at_once() -> None:
    stop = asyncio.Event()
    stepped = asyncio.Event()
    ran = 0

    async def step() -> None:
        nonlocal ran
        ran += 1
        stepped.set()

    loop = asyncio.create_task(periodically(step, LONG, stop, what="step", immediately=True))
    await asyncio.wait_for(stepped.wait(), 5)
    stop.set()
    await asyncio.wait_for(loop, 5)  # not after LONG seconds
    assert ran == 1, "no step once stop is set"


async def test_a_stop_set_before_the_loop_runs_no_step() -> None:
    stop = asyncio.Event()
    stop.set()
    ran = 0

    async def step() -> None:
        nonlocal ran
        ran += 1

    await asyncio.wait_for(periodically(step, LONG, stop, what="step", immediately=True), 5)
    assert ran == 0


async def test_a_step_returning_false_ends_the_loop() -> None:
    stop = asyncio.Event()
    ran = 0

    async def step() -> bool:
        nonlocal ran
        ran += 1
        return ran < 2

    await asyncio.wait_for(periodically(step, EVERY, stop, what="renew", immediately=True), 5)
    assert ran == 2 and not stop.is_set()


async def test_retried_errors_are_logged_and_the_next_step_runs(caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    ran = 0

    async def step() -> None:
        nonlocal ran
        ran += 1
        if ran < 3:
            raise ConnectionError("bus unreachable")
        stop.set()

    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(
            periodically(step, 0.1, stop, what="renew the lease", retry_on=(ConnectionError,), immediately=True), 5
        )
    assert ran == 3
    retried = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert retried == ["could not renew the lease, retrying in 0.1 s: bus unreachable"] * 2, retried


async def test_other_errors_end_the_loop_and_are_raised() -> None:
    stop = asyncio.Event()
    ran = 0

    async def step() -> None:
        nonlocal ran
        ran += 1
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await asyncio.wait_for(
            periodically(step, EVERY, stop, what="step", retry_on=(ConnectionError,), immediately=True), 5
        )
    assert ran == 1


async def test_pause_says_whether_it_was_stopped() -> None:
    stop = asyncio.Event()
    assert await pause(stop, 0.01) is False
    stop.set()
    assert await asyncio.wait_for(pause(stop, LONG), 5) is True


async def test_an_interval_function_is_asked_for_each_wait() -> None:
    """The lease keeper's case: short waits while something moves, the long one otherwise."""
    stop = asyncio.Event()
    waits = iter([EVERY, EVERY, LONG])
    asked = 0
    ran = 0

    def every() -> float:
        nonlocal asked
        asked += 1
        return next(waits)

    async def step() -> None:
        nonlocal ran
        ran += 1

    loop = asyncio.create_task(periodically(step, every, stop, what="step"))
    # Two short waits, then a long one: the third step comes only if the function was asked again after each step.
    await eventually(lambda: ran == 2, timeout=5, what="two steps")
    assert asked == 3, "asked once before the first step and once after each"
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert ran == 2
