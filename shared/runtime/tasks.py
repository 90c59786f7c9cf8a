"""Task groups for a service's loops: one failing stops the others, and its own error is what the caller sees."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)


def leaf_errors(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The errors inside `group` (nested groups flattened), each once, in order."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        for leaf in leaf_errors(exc) if isinstance(exc, BaseExceptionGroup) else [exc]:
            if all(leaf is not seen for seen in found):
                found.append(leaf)
    return found


@contextlib.asynccontextmanager
async def task_group() -> AsyncIterator[asyncio.TaskGroup]:
    """An `asyncio.TaskGroup` that raises the first error itself, not an ExceptionGroup around it, so callers and
    logs see what failed; errors that came with it (often its consequences) are logged."""
    try:
        async with asyncio.TaskGroup() as tg:
            yield tg
    except BaseExceptionGroup as group:
        first, *others = leaf_errors(group)
        for other in others:
            log.error("also failed meanwhile: %r", other)
        raise first from None


async def until_stopped(loop: Callable[[], Awaitable[None]], stop: asyncio.Event, what: str) -> None:
    """Run `loop()`, a loop meant to run until `stop`: one that returns before is an error (a loop quietly gone
    would leave its service half working). Takes the loop's function, not its coroutine: a task cancelled before it
    starts then leaves no coroutine behind that was never awaited."""
    await loop()
    if not stop.is_set():
        raise RuntimeError(f"{what} stopped")
