"""A local HTTP receiver for webhooks, recording every call."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from scheduler.embedded import free_port


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str
    at: float


@dataclass
class Receiver:
    status: int = 200
    reply: str = "received"
    calls: list[Call] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls.append(
            Call(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                await request.text(),
                time.time(),
            )
        )
        return web.Response(status=self.status, text=self.reply)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def webhook_ids(self) -> list[str]:
        return [c.headers.get("webhook-id", "") for c in self.calls]
