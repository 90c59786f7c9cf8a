"""Where exceptions become responses: every surface registers its renderer here, for the same exceptions, and
each renders the one error table's answer (services/api/core/errors.py) in its own format. The primary API's format
is the app's default: {"detail", "error_code", "status_code"}."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from services.api.core.errors import ANSWERED, ErrorAnswer, answer_for

log = logging.getLogger(__name__)

Handlers = dict[type[Exception] | int, Callable[..., Response[Any]]]

_HTTP_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
    503: "SERVICE_UNAVAILABLE",
}


class ErrorRenderer(Protocol):
    """One surface's error format."""

    def answer(self, request: Request[Any, Any, Any], exc: Exception, answer: ErrorAnswer) -> Response[Any]:
        """The table's answer to `exc`."""

    def validation(self, request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
        """A request Litestar could not read into the handler's parameters."""

    def http(self, request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        """Litestar's own refusals (no route, method not allowed, body too large, ...)."""


def _logged(exc: Exception, answer: ErrorAnswer) -> None:
    if answer.kind == "internal":
        log.exception("unhandled error", exc_info=exc)
    elif answer.kind == "unavailable":
        # The type too: a timeout's message is empty.
        log.error("%s unavailable: %s: %s", answer.dependency or "a dependency", type(exc).__name__, exc)


def exception_handlers(renderer: ErrorRenderer) -> Handlers:
    """A surface's handlers: the same exceptions on every surface, each answered from the table."""

    def answered(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        answer = answer_for(exc)
        _logged(exc, answer)
        return renderer.answer(request, exc, answer)

    handlers: Handlers = dict.fromkeys(ANSWERED, answered)
    handlers[ValidationException] = renderer.validation
    handlers[HTTPException] = renderer.http
    return handlers


def _error_body(status: int, code: str, detail: str) -> dict[str, Any]:
    return {"detail": detail, "error_code": code, "status_code": status}


def _respond(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(content=_error_body(status, code, detail), status_code=status, headers=headers)


class PrimaryErrors:
    """The primary API's (and the app's) format: {"detail", "error_code", "status_code"}."""

    def answer(self, request: Request[Any, Any, Any], exc: Exception, answer: ErrorAnswer) -> Response[Any]:
        headers = {"WWW-Authenticate": "Bearer"} if answer.status == 401 else None
        return _respond(answer.status, answer.code, answer.detail, headers)

    def validation(self, request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
        detail = exc.detail or "request validation failed"
        problems = exc.extra if isinstance(exc.extra, list) else []
        if problems:
            parts = [f"{p.get('key') or 'body'}: {p.get('message')}" for p in problems if isinstance(p, dict)]
            detail = f"{detail}: {'; '.join(parts)}" if parts else detail
        return _respond(400, "VALIDATION_ERROR", detail)

    def http(self, request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        status = exc.status_code
        if status >= 500:
            return _respond(status, "INTERNAL_ERROR", "internal error")
        return _respond(status, _HTTP_CODES.get(status, "HTTP_ERROR"), exc.detail, exc.headers)
