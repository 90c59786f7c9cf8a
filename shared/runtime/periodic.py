"""Loops that take one step every so often until asked to stop: lease renewals, state saves.

Error policy: a step that fails with one of the `retry_on` errors (the bus briefly unreachable, a timeout) is logged
as a warning and tried again after the interval; any other error ends the loop and is raised, so the service's task
group sees it. The loop waits on the stop event, never sleeps past it: it ends as soon as stop is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

_log = logging.getLogger(__name__)


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less if `stop` is set meanwhile; whether `stop` is set."""
    if not stop.is_set():
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that arrives as it times out.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await stop.wait()
    return stop.is_set()


async def periodically(
    step: Callable[[], Awaitable[bool | None]],
    every: float | Callable[[], float],
    stop: asyncio.Event,
    *,
    what: str,
    retry_on: tuple[type[Exception], ...] = (),
    immediately: bool = False,
    log: logging.Logger = _log,
) -> None:
    """Run `step` every `every` seconds (counted from the end of the previous one) until `stop` is set; `every` may
    be a function, asked after each step for the next interval.

    The first step runs at once if `immediately`, else after one interval. A step that returns False ends the loop
    (a lease found lost). Errors of the `retry_on` types are logged ("could not <what>, retrying in N s") and the
    step runs again at the next interval; any other error ends the loop and is raised.
    """
    interval = every if callable(every) else lambda: every
    if not immediately and await pause(stop, interval()):
        return
    while not stop.is_set():
        try:
            if await step() is False:
                return
        except retry_on as exc:
            log.warning("could not %s, retrying in %.1f s: %s", what, interval(), exc)
        await pause(stop, interval())
