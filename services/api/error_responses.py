"""The one place where exceptions become HTTP responses: {"detail", "error_code", "status_code"}."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncpg
import nats.errors
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from services.api.domain_errors import (
    ConflictError,
    DependencyUnavailableError,
    ForbiddenError,
    JobNotFoundError,
    SchedulerApiError,
    UnauthorizedError,
    ValidationFailedError,
    WebhookNotFoundError,
)

log = logging.getLogger(__name__)

_STATUS: dict[type[SchedulerApiError], int] = {
    ValidationFailedError: 400,
    UnauthorizedError: 401,
    ForbiddenError: 403,
    JobNotFoundError: 404,
    WebhookNotFoundError: 404,
    ConflictError: 409,
    DependencyUnavailableError: 503,
}

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


def error_body(status: int, code: str, detail: str) -> dict[str, Any]:
    return {"detail": detail, "error_code": code, "status_code": status}


def _respond(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(content=error_body(status, code, detail), status_code=status, headers=headers)


def _domain(_: Request[Any, Any, Any], exc: SchedulerApiError) -> Response[Any]:
    status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 500)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return _respond(status, exc.code, exc.detail, headers)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    detail = exc.detail or "request validation failed"
    problems = exc.extra if isinstance(exc.extra, list) else []
    if problems:
        parts = [f"{p.get('key') or 'body'}: {p.get('message')}" for p in problems if isinstance(p, dict)]
        detail = f"{detail}: {'; '.join(parts)}" if parts else detail
    return _respond(400, "VALIDATION_ERROR", detail)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        return _respond(status, "INTERNAL_ERROR", "internal error")
    return _respond(status, _HTTP_CODES.get(status, "HTTP_ERROR"), exc.detail, exc.headers)


def _database(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("database unavailable: %s", exc)
    return _respond(503, "DATABASE_ERROR", "the database is unavailable, try again shortly")


def _bus(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("event bus unavailable: %s", exc)
    return _respond(503, "SERVICE_UNAVAILABLE", "the event store is unavailable, try again shortly")


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", exc_info=exc)
    return _respond(500, "INTERNAL_ERROR", "internal error")


def exception_handlers() -> dict[type[Exception] | int, Callable[..., Response[Any]]]:
    """Handlers for Litestar, most specific first by class hierarchy."""
    return {
        SchedulerApiError: _domain,
        ValidationException: _validation,
        HTTPException: _http,
        asyncpg.PostgresError: _database,
        asyncpg.InterfaceError: _database,
        nats.errors.Error: _bus,
        OSError: _database,
        Exception: _unexpected,
    }
