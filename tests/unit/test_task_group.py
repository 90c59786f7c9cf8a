"""The services' task group: a failing loop stops its siblings and its own error comes out, not an ExceptionGroup."""

from __future__ import annotations

import asyncio

import pytest

from shared.runtime.tasks import leaf_errors, task_group, until_stopped

pytestmark = pytest.mark.unit


async def test_a_failing_task_cancels_the_others_and_raises_its_own_error() -> None:
    cancelled = asyncio.Event()

    async def sibling() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def failing() -> None:
        raise KeyError("lost")

    async def group() -> None:
        async with task_group() as tg:
            tg.create_task(sibling())
            tg.create_task(failing())
            await asyncio.Event().wait()  # the body is cancelled too

    with pytest.raises(KeyError, match="lost"):
        await group()
    assert cancelled.is_set()


async def test_a_loop_that_quits_before_stop_is_an_error() -> None:
    async def quits() -> None:
        return

    with pytest.raises(RuntimeError, match="the follower stopped"):
        await until_stopped(quits, asyncio.Event(), "the follower")
    stop = asyncio.Event()
    stop.set()
    await until_stopped(quits, stop, "the follower")  # asked to: fine


def test_leaf_errors_flattens_nested_groups_and_drops_repeats() -> None:
    first, second = ValueError("a"), KeyError("b")
    group = BaseExceptionGroup("outer", [first, ExceptionGroup("inner", [second, first])])
    assert leaf_errors(group) == [first, second]
