"""Each process's ops endpoint for Kubernetes and Prometheus: /livez, /readyz and /metrics.

Liveness is the event loop answering; readiness is every service of the process started and none stopped.
Off unless SCHEDULER_OPS_PORT is set (the manifests set it; `scheduler dev` has the api's /health instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


@dataclass
class Readiness:
    started: bool = False
    stopping: bool = False
    services: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.started and not self.stopping


class OpsServer:
    def __init__(self, host: str, port: int, readiness: Readiness) -> None:
        self._host, self._port, self._readiness = host, port, readiness
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _livez(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, _: web.Request) -> web.Response:
        r = self._readiness
        body = {"status": "ready" if r.ready else "not ready", "services": r.services}
        return web.json_response(body, status=200 if r.ready else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
