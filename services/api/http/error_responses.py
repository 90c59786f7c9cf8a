"""The one place where exceptions become HTTP responses: {"detail", "error_code", "status_code"}."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import asyncpg
import nats.errors
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from services.api.domain_errors import (
    ConflictError,
    DependencyUnavailableError,
    ExecutionNotFoundError,
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
    ExecutionNotFoundError: 404,
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


def status_of(exc: SchedulerApiError) -> int:
    """The HTTP status of a domain error, on every surface (the dashboard's too)."""
    return next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 500)


def error_body(status: int, code: str, detail: str) -> dict[str, Any]:
    return {"detail": detail, "error_code": code, "status_code": status}


def _respond(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(content=error_body(status, code, detail), status_code=status, headers=headers)


def _domain(_: Request[Any, Any, Any], exc: SchedulerApiError) -> Response[Any]:
    status = status_of(exc)
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


def _bus_timeout(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("event bus did not answer in time: %s", exc)
    return _respond(
        503,
        "SERVICE_UNAVAILABLE",
        "the event store did not answer in time; if this was a change it may still be applied, so read it back"
        " before retrying",
    )


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
        nats.errors.TimeoutError: _bus_timeout,
        nats.errors.Error: _bus,
        OSError: _database,
        Exception: _unexpected,
    }


# The NEXUS surface (/api/v1) answers errors as its document shows: {"detail": "..."}, and validation as 422 with
# {"detail": [{"loc", "msg", "type"}]}.
_NEXUS_DETAILS: dict[type[SchedulerApiError], str] = {JobNotFoundError: "Job not found"}


def _nexus(status: int, detail: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(content={"detail": detail}, status_code=status, headers=headers)


def _nexus_domain(_: Request[Any, Any, Any], exc: SchedulerApiError) -> Response[Any]:
    status = status_of(exc)
    if isinstance(exc, ValidationFailedError):
        loc = [exc.location, exc.field] if exc.field else [exc.location]
        if exc.missing:
            return _nexus(422, [{"loc": loc, "msg": "field required", "type": "value_error.missing"}])
        return _nexus(422, [{"loc": loc, "msg": exc.detail, "type": "value_error"}])
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return _nexus(status, _NEXUS_DETAILS.get(type(exc), exc.detail), headers)


_MISSING = re.compile(r"missing required field `([^`]+)`")


def _problem(source: str, key: str | None, message: str) -> dict[str, Any]:
    """One Litestar problem as a FastAPI-style item: key 'tags[0]' becomes loc ['body', 'tags', 0]."""
    loc: list[str | int] = [source]
    for part in re.findall(r"[^.\[\]$]+", key or ""):
        if part != "data":  # Litestar's name for the whole body
            loc.append(int(part) if part.isdigit() else part)
    if missing := _MISSING.search(message):
        return {"loc": [*loc, missing[1]], "msg": "field required", "type": "value_error.missing"}
    return {"loc": loc, "msg": message, "type": "value_error"}


def _nexus_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    items = [
        _problem(p.get("source") or "body", p.get("key"), str(p.get("message")))
        for p in problems
        if isinstance(p, dict)
    ]
    return _nexus(422, items or [{"loc": ["body"], "msg": exc.detail or "invalid request", "type": "value_error"}])


def _nexus_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        return _nexus(exc.status_code, "Internal server error")
    return _nexus(exc.status_code, exc.detail, exc.headers)


def _nexus_database(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("database unavailable: %s", exc)
    return _nexus(503, "The database is unavailable, try again shortly")


def _nexus_bus(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("event bus unavailable: %s", exc)
    return _nexus(503, "The event store is unavailable, try again shortly")


def _nexus_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", exc_info=exc)
    return _nexus(500, "Internal server error")


def nexus_exception_handlers() -> dict[type[Exception] | int, Callable[..., Response[Any]]]:
    """Handlers for the /api/v1 router; they take precedence there over the app's."""
    return {
        SchedulerApiError: _nexus_domain,
        ValidationException: _nexus_validation,
        HTTPException: _nexus_http,
        asyncpg.PostgresError: _nexus_database,
        asyncpg.InterfaceError: _nexus_database,
        nats.errors.Error: _nexus_bus,
        OSError: _nexus_database,
        Exception: _nexus_unexpected,
    }
