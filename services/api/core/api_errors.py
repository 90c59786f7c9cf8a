"""Errors the api raises. They carry a stable code and know nothing of HTTP: the error table (errors.py) says what
each means, and each surface renders that answer.

The job domain raises its own errors (shared.domain.errors); `api_error` gives the api's error for each, and
`translated()` turns them into it where the api calls the domain.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.api.core.error_fields import nexus_field
from shared.domain import errors as domain


class SchedulerApiError(Exception):
    """Root of every api error. `code` is the documented error_code."""

    code = "INTERNAL_ERROR"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailedError(SchedulerApiError):
    """Input that cannot be used. `field` names the field at fault, when there is one, as the surfaces that show
    it (NEXUS, the dashboard) call it, and `location` where it is (body, query, path, header). From the domain,
    `domain_field` is the neutral name and `schedule_kind` the kind of schedule at fault, for a surface to name
    the field its own way (see error_fields.py)."""

    code = "VALIDATION_ERROR"

    def __init__(
        self,
        detail: str,
        field: str | None = None,
        location: str = "body",
        missing: bool = False,
        *,
        domain_field: domain.Field | None = None,
        schedule_kind: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.field = field
        self.location = location
        self.missing = missing
        self.domain_field = domain_field
        self.schedule_kind = schedule_kind


class InvalidCronError(ValidationFailedError):
    code = "INVALID_CRON_EXPRESSION"


class JobNotFoundError(SchedulerApiError):
    code = "JOB_NOT_FOUND"


class ExecutionNotFoundError(SchedulerApiError):
    code = "EXECUTION_NOT_FOUND"


class WebhookNotFoundError(SchedulerApiError):
    code = "WEBHOOK_NOT_FOUND"


class UnauthorizedError(SchedulerApiError):
    code = "UNAUTHORIZED"


class ForbiddenError(SchedulerApiError):
    code = "FORBIDDEN"


class ConflictError(SchedulerApiError):
    code = "CONFLICT"


class DependencyUnavailableError(SchedulerApiError):
    code = "SERVICE_UNAVAILABLE"


_BY_DOMAIN: dict[type[domain.DomainError], type[SchedulerApiError]] = {
    domain.JobNotFound: JobNotFoundError,
    domain.WebhookNotFound: WebhookNotFoundError,
    domain.Conflict: ConflictError,
}


def api_error(exc: domain.DomainError) -> SchedulerApiError:
    """The api's error for a domain error: same code and detail. A validation error's `field` is the name the
    surfaces that show fields use (NEXUS and the dashboard name them alike; the primary API shows none)."""
    if isinstance(exc, domain.ValidationFailed):
        cls = InvalidCronError if isinstance(exc, domain.InvalidCron) else ValidationFailedError
        return cls(
            exc.detail,
            nexus_field(exc.field, exc.schedule_kind),
            missing=exc.missing,
            domain_field=exc.field,
            schedule_kind=exc.schedule_kind,
        )
    return _BY_DOMAIN.get(type(exc), SchedulerApiError)(exc.detail)


@contextmanager
def translated() -> Iterator[None]:
    """Raise the api's error for any domain error raised inside."""
    try:
        yield
    except domain.DomainError as exc:
        raise api_error(exc) from exc
