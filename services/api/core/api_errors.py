"""Errors the api raises. They carry a stable code and know nothing of HTTP: the error table (errors.py) says what
each means, and each surface renders that answer.

The job domain raises its own errors (shared.domain.errors); `api_error` gives the api's error for each, and
`translated()` turns them into it where the api calls the domain.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.domain import errors as domain


class SchedulerApiError(Exception):
    """Root of every api error. `code` is the documented error_code."""

    code = "INTERNAL_ERROR"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailedError(SchedulerApiError):
    """Input that cannot be used. `field` names the field at fault, when there is one, and `location` where it is
    (body, query, path, header). From the core (the domain, job_mapping.py) the name is neutral: a
    shared.domain.errors.Field, or "anchor" (when an interval's runs are counted from), or "arguments" (a run's task
    arguments), with `schedule_kind` the kind of schedule a "schedule" error is about; a surface's own errors use its
    own names. Each surface that shows fields names them its own way when it renders the error."""

    code = "VALIDATION_ERROR"

    def __init__(
        self,
        detail: str,
        field: str | None = None,
        location: str = "body",
        missing: bool = False,
        *,
        schedule_kind: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.field = field
        self.location = location
        self.missing = missing
        self.schedule_kind = schedule_kind


class InvalidCronError(ValidationFailedError):
    code = "INVALID_CRON_EXPRESSION"


class JobNotFoundError(SchedulerApiError):
    code = "JOB_NOT_FOUND"


class ExecutionNotFoundError(SchedulerApiError):
    code = "EXECUTION_NOT_FOUND"


class BackfillNotFoundError(SchedulerApiError):
    code = "BACKFILL_NOT_FOUND"


class WebhookNotFoundError(SchedulerApiError):
    code = "WEBHOOK_NOT_FOUND"


class UnauthorizedError(SchedulerApiError):
    code = "UNAUTHORIZED"


class ForbiddenError(SchedulerApiError):
    code = "FORBIDDEN"


class ConflictError(SchedulerApiError):
    code = "CONFLICT"


class IdempotencyKeyReusedError(ConflictError):
    """An idempotency key given again with another request, or naming a job that has since been deleted."""

    code = "IDEMPOTENCY_KEY_REUSED"


class DependencyUnavailableError(SchedulerApiError):
    code = "SERVICE_UNAVAILABLE"


_BY_DOMAIN: dict[type[domain.DomainError], type[SchedulerApiError]] = {
    domain.JobNotFound: JobNotFoundError,
    domain.WebhookNotFound: WebhookNotFoundError,
    domain.Conflict: ConflictError,
}


def api_error(exc: domain.DomainError) -> SchedulerApiError:
    """The api's error for a domain error: same code, detail and (neutral) field."""
    if isinstance(exc, domain.ValidationFailed):
        cls = InvalidCronError if isinstance(exc, domain.InvalidCron) else ValidationFailedError
        return cls(exc.detail, exc.field, missing=exc.missing, schedule_kind=exc.schedule_kind)
    return _BY_DOMAIN.get(type(exc), SchedulerApiError)(exc.detail)


@contextmanager
def translated() -> Iterator[None]:
    """Raise the api's error for any domain error raised inside."""
    try:
        yield
    except domain.DomainError as exc:
        raise api_error(exc) from exc
