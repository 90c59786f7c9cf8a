"""A local webhook receiver that timestamps every request on arrival, for lateness and loss counts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Arrivals:
    """(occurrence id, arrival time in Unix seconds) of every request, duplicates included."""

    calls: list[tuple[str, float]] = field(default_factory=list)


class TimestampingReceiver:
    def __init__(self) -> None:
        self.arrivals = Arrivals()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.time()
        ident = request.headers.get("webhook-id") or request.query.get("id", "")
        self.arrivals.calls.append((ident, arrived))
        await request.read()
        return web.Response(text="ok")

    async def start(self) -> TimestampingReceiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
