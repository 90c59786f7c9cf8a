"""A local HTTP receiver for webhooks, recording every call."""

from __future__ import annotations

import asyncio
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
    # Status by request path, for receivers that fail on some paths only.
    statuses: dict[str, int] = field(default_factory=dict)
    # Answers on these paths wait until the event is set (the call is recorded on arrival).
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    # Scripted answers by path, (status, headers) each, used up one per call before `statuses` applies.
    scripts: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    # Bytes to answer with on these paths instead of `reply`.
    bodies: dict[str, bytes] = field(default_factory=dict)
    # Answers on these paths take this long (seconds): a slow receiver.
    slow: dict[str, float] = field(default_factory=dict)
    # Requests being answered now, and the most there ever were at once, by path.
    in_flight: dict[str, int] = field(default_factory=dict)
    most_in_flight: dict[str, int] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        self.in_flight[path] = self.in_flight.get(path, 0) + 1
        self.most_in_flight[path] = max(self.most_in_flight.get(path, 0), self.in_flight[path])
        try:
            return await self._answer(request)
        finally:
            self.in_flight[path] -= 1

    async def _answer(self, request: web.Request) -> web.Response:
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
        if request.path in self.gates:
            await self.gates[request.path].wait()
        if request.path in self.slow:
            await asyncio.sleep(self.slow[request.path])  # the receiver's own work, not a test's wait
        if self.scripts.get(request.path):
            status, headers = self.scripts[request.path].pop(0)
            return web.Response(status=status, headers=headers, text=self.reply)
        status = self.statuses.get(request.path, self.status)
        if request.path in self.bodies:
            return web.Response(status=status, body=self.bodies[request.path])
        return web.Response(status=status, text=self.reply)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = self.port or free_port()  # a port given: a receiver that was down comes up there
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    def webhook_ids(self) -> list[str]:
        return [c.headers.get("webhook-id", "") for c in self.calls]
