"""A ticker running in the test's own process, stopped (and its stop awaited) on the way out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from services.ticker.service import Ticker, open_ticker
from shared.settings import Settings


@asynccontextmanager
async def running_ticker(settings: Settings, clock: Callable[[], datetime] | None = None) -> AsyncIterator[Ticker]:
    stop = asyncio.Event()
    async with open_ticker(settings, clock) if clock is not None else open_ticker(settings) as ticker:
        task = asyncio.create_task(ticker.run(stop))
        try:
            yield ticker
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
