"""The event loop every process of the system runs on: uvloop where it is installed (a dependency on Linux and
macOS), the standard loop elsewhere.

uvloop runs the same asyncio code on libuv; on this system's hot path (NATS publishes and acks, HTTP requests,
PostgreSQL round trips) the loop's own overhead is a large share of each execution's CPU (docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None (the standard loop) where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:  # Windows, or an install without it
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
