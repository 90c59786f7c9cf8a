"""The event loop a long-running process runs on.

uvloop (libuv, written in Cython) where it is installed, which is Linux and macOS: its sockets, timers and callbacks
cost less CPU than asyncio's selector loop, and at a delivery rate a core can just sustain the dispatcher moves a
seventh more executions on it (docs/performance.md, issue 17's fifth session). `SCHEDULER_EVENT_LOOP=asyncio` keeps the
standard loop; elsewhere uvloop is not a dependency and the standard loop is used either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")


def run_on(loop: Literal["uvloop", "asyncio"], main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a new event loop of the kind asked for (asyncio's when uvloop is not installed)."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
