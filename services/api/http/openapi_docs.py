"""What the OpenAPI schema says about auth and errors, so a generated client knows every error it can get."""

from __future__ import annotations

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, SecurityRequirement


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error response."""

    detail: str
    error_code: str
    status_code: int


BEARER_SCHEME = "BearerToken"
BEARER: list[SecurityRequirement] = [{BEARER_SCHEME: []}]

# Every protected operation can fail these ways.
PROTECTED = (401, 403, 503)
# And every operation that takes a body (request_bodies.py: too large is 413; malformed or too deep is 400).
BODY = (400, 413)

_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("Invalid input: a validation error or an invalid cron expression", "VALIDATION_ERROR", "name: too long"),
    401: ("Missing, expired or invalid bearer token", "UNAUTHORIZED", "missing bearer token"),
    403: ("The token does not give access to this account, job or webhook", "FORBIDDEN", "no access to this account"),
    404: ("No such job or webhook (JOB_NOT_FOUND, WEBHOOK_NOT_FOUND)", "JOB_NOT_FOUND", ""),
    409: ("The job changed concurrently; re-read and try again", "CONFLICT", "job is being changed concurrently"),
    413: ("The body is larger than 1 MiB", "PAYLOAD_TOO_LARGE", "Request Entity Too Large"),
    503: (
        "A dependency (database, event store) is unavailable (DATABASE_ERROR, SERVICE_UNAVAILABLE)",
        "DATABASE_ERROR",
        "the database is unavailable, try again shortly",
    ),
}


# On a create, a 409 is an Idempotency-Key's (services/api/core/idempotency.py): the same key again answers the same.
_KEY_REUSED = (
    "The Idempotency-Key was used with another body, or its job has been deleted; use a new key",
    "IDEMPOTENCY_KEY_REUSED",
    "this Idempotency-Key was already used with a different request",
)


def create_error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """error_responses for a create route, whose 409 is an Idempotency-Key reused."""
    return error_responses(*codes) | {409: _spec(409, *_KEY_REUSED)}


def error_responses(*codes: int, not_found: str = "JOB_NOT_FOUND") -> dict[int, ResponseSpec]:
    """ResponseSpecs for `codes`, each with the one error body format; `not_found` is the 404's error_code."""
    specs = {}
    for code in sorted(set(codes)):
        description, error_code, detail = _ERRORS[code]
        if code == 404:
            error_code, detail = not_found, f"{not_found.split('_')[0].lower()} 3f1c... not found"
        specs[code] = _spec(code, description, error_code, detail)
    return specs


def _spec(code: int, description: str, error_code: str, detail: str) -> ResponseSpec:
    example = {"detail": detail, "error_code": error_code, "status_code": code}
    return ResponseSpec(
        data_container=ErrorBody,
        description=description,
        generate_examples=False,
        examples=[Example(summary=error_code, value=example)],
    )


class NexusProblem(msgspec.Struct, kw_only=True):
    loc: list[str | int]
    msg: str
    type: str


class NexusValidationError(msgspec.Struct, kw_only=True):
    """422 on the NEXUS surface."""

    detail: list[NexusProblem]


class NexusError(msgspec.Struct, kw_only=True):
    """Every other error on the NEXUS surface."""

    detail: str


_NEXUS_ERRORS = {
    400: "Malformed JSON, or JSON nested more than 64 levels deep",
    401: "Missing, expired or invalid bearer token",
    403: "The token does not give access to this job's account",
    404: "Job not found",
    409: "The job changed concurrently; try again",
    413: "The body is larger than 1 MiB",
    503: "The database or the event store is unavailable",
}


def nexus_create_error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """nexus_error_responses for a create route, whose 409 is an Idempotency-Key reused."""
    reused = ResponseSpec(data_container=NexusError, description=_KEY_REUSED[0])
    return nexus_error_responses(*codes) | {409: reused}


def nexus_error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """ResponseSpecs in the NEXUS document's shapes: 422 lists problems, the rest carry a detail string."""
    specs = {422: ResponseSpec(data_container=NexusValidationError, description="Validation failed")}
    for code in codes:
        specs[code] = ResponseSpec(data_container=NexusError, description=_NEXUS_ERRORS[code])
    return specs
