"""The one error table: what an exception means (status, code, message), whichever surface answers it.

Each surface renders an answer in its own format (services/api/http/error_responses.py registers them); none of
them decides what an error is.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Literal

import asyncpg
import nats.errors

from services.api.core.api_errors import (
    BackfillNotFoundError,
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

Kind = Literal["domain", "unavailable", "internal"]
Dependency = Literal["database", "event store"]


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """What to answer: `detail` is the domain error's own message, or the table's for the others. `dependency`
    names what is down, when that can be told."""

    status: int
    code: str
    detail: str
    kind: Kind
    dependency: Dependency | None = None


_DOMAIN_STATUS: dict[type[SchedulerApiError], int] = {
    ValidationFailedError: 400,
    UnauthorizedError: 401,
    ForbiddenError: 403,
    JobNotFoundError: 404,
    BackfillNotFoundError: 404,
    ExecutionNotFoundError: 404,
    WebhookNotFoundError: 404,
    ConflictError: 409,
    DependencyUnavailableError: 503,
}

DATABASE_DOWN = ErrorAnswer(
    503, "DATABASE_ERROR", "the database is unavailable, try again shortly", "unavailable", "database"
)
EVENT_STORE_DOWN = ErrorAnswer(
    503, "SERVICE_UNAVAILABLE", "the event store is unavailable, try again shortly", "unavailable", "event store"
)
EVENT_STORE_SLOW = ErrorAnswer(
    503,
    "SERVICE_UNAVAILABLE",
    "the event store did not answer in time; if this was a change it may still be applied, so read it back"
    " before retrying (a create retried with the same Idempotency-Key is safe)",
    "unavailable",
    "event store",
)
SOMETHING_DOWN = ErrorAnswer(
    503, "SERVICE_UNAVAILABLE", "the database or the event store is unavailable, try again shortly", "unavailable"
)
INTERNAL = ErrorAnswer(500, "INTERNAL_ERROR", "internal error", "internal")

# Most specific first: a NATS timeout is a NATS error, and both are OSErrors.
_INFRASTRUCTURE: tuple[tuple[type[Exception], ErrorAnswer], ...] = (
    (asyncpg.PostgresError, DATABASE_DOWN),
    (asyncpg.InterfaceError, DATABASE_DOWN),
    (nats.errors.TimeoutError, EVENT_STORE_SLOW),
    (nats.errors.Error, EVENT_STORE_DOWN),
)
_BY_ORIGIN: dict[Dependency | None, ErrorAnswer] = {
    "database": DATABASE_DOWN,
    "event store": EVENT_STORE_DOWN,
    None: SOMETHING_DOWN,
}
# Code that talks to each dependency, by module prefix: the client library and this project's adapter over it.
_CLIENTS: tuple[tuple[tuple[str, ...], Dependency], ...] = (
    (("asyncpg", "shared.db"), "database"),
    (("nats", "shared.bus"), "event store"),
)

# Every exception class the table answers (Exception last: anything else is an internal error).
ANSWERED: tuple[type[Exception], ...] = (
    SchedulerApiError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    nats.errors.Error,
    OSError,
    Exception,
)


def status_of(exc: SchedulerApiError) -> int:
    """The HTTP status of a domain error, on every surface."""
    return next((s for cls, s in _DOMAIN_STATUS.items() if isinstance(exc, cls)), 500)


def origin_of(exc: BaseException) -> Dependency | None:
    """Which dependency an error came from: the innermost frame of its traceback in code that talks to one
    (a connection refused, reset or timed out is a bare OSError, whichever client met it)."""
    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        module = str(frame.f_globals.get("__name__", ""))
        for prefixes, dependency in _CLIENTS:
            if any(module == p or module.startswith(p + ".") for p in prefixes):
                return dependency
    return None


def sentence(text: str) -> str:
    """A table message starting a sentence (the NEXUS document and the dashboard's pages write them so)."""
    return text[:1].upper() + text[1:]


def answer_for(exc: Exception) -> ErrorAnswer:
    """The answer to `exc`, from the table."""
    if isinstance(exc, SchedulerApiError):
        return ErrorAnswer(status_of(exc), exc.code, exc.detail, "domain")
    for cls, answer in _INFRASTRUCTURE:
        if isinstance(exc, cls):
            return answer
    if isinstance(exc, OSError):
        return _BY_ORIGIN[origin_of(exc)]
    return INTERNAL
