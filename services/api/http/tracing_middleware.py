"""The api's span of each HTTP request (a server span continuing the caller's `traceparent`, if it sent one), so
the command it carries, the event's append and the projector's write of it are one trace. Named by the route
(`POST /api/jobs/{job_id:str}/backfills`), with the answer's status (5xx: an error). The dashboard's live feed, a
response that lasts as long as its page is open, is not traced. Tracing off, the request goes straight through."""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from shared.observability import tracing

# Streams that stay open for the life of a page: a span around one would last hours.
UNTRACED_SUFFIXES = ("/live",)


def traced(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != ScopeType.HTTP or not tracing.enabled() or path.endswith(UNTRACED_SUFFIXES):
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        method = scope.get("method", "GET")
        route = scope.get("path_template") or path
        what = {"http.request.method": method, "http.route": route}
        with tracing.span(f"{method} {route}", tracing.SERVER, parent=headers, attributes=what) as current:

            async def answered(message: Message) -> None:
                if message["type"] == "http.response.start" and current is not None:
                    status = int(message["status"])
                    current.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        tracing.failed(current, f"HTTP {status}")
                await send(message)

            await app(scope, receive, answered)

    return middleware
