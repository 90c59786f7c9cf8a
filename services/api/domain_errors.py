"""Errors the api raises. They carry a stable code and know nothing of HTTP; error_responses.py maps them."""

from __future__ import annotations


class SchedulerApiError(Exception):
    """Root of every api error. `code` is the documented error_code."""

    code = "INTERNAL_ERROR"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailedError(SchedulerApiError):
    """Input that cannot be used. `field` names the field at fault, when there is one, and `location` where it is
    (body, query, path, header)."""

    code = "VALIDATION_ERROR"

    def __init__(self, detail: str, field: str | None = None, location: str = "body", missing: bool = False) -> None:
        super().__init__(detail)
        self.field = field
        self.location = location
        self.missing = missing


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
