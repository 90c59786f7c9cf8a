"""The api's span of each HTTP request (a server span continuing the caller's `traceparent`, if it sent one), so
the command it carries, the event's append and the projector's write of it are one trace. Tracing off, the request
goes straight through."""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from shared.observability import tracing


def traced(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not tracing.enabled():
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        method = scope.get("method", "GET")
        what = {"http.request.method": method, "url.path": scope.get("path", "")}
        with tracing.span(f"{method} {scope.get('path', '')}", tracing.SERVER, parent=headers, attributes=what):
            await app(scope, receive, send)

    return middleware
