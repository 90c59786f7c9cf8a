"""Errors of the job domain. They carry a stable code and a neutral field name; they know nothing of HTTP nor of
any API's field names: each surface names the field its own way when it shows the error."""

from __future__ import annotations

from typing import Literal

# The field at fault, named as in the job's state (JobState, WebhookSpec): "schedule" is the schedule whatever its
# kind, "task" the task (its name, arguments).
Field = Literal[
    "name",
    "schedule",
    "timezone",
    "task",
    "timeout_seconds",
    "start_at",
    "end_at",
    "exclusions",
    "callback_url",
    "failure_callback_url",
    "flow_control",
    "after",
    "webhooks",
    "url",
    "method",
    "headers",
    "body_template",
    "content_type",
]


class DomainError(Exception):
    """Root of the domain's errors. `code` is the documented error code, `detail` what went wrong."""

    code = "INTERNAL_ERROR"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailed(DomainError):
    """A command that cannot be carried out as given. `field` names the field at fault, when there is one;
    `schedule_kind` says which kind of schedule a "schedule" error is about (surfaces name it by kind); `missing`:
    the field has no value where one is needed."""

    code = "VALIDATION_ERROR"

    def __init__(
        self, detail: str, field: Field | None = None, *, schedule_kind: str | None = None, missing: bool = False
    ) -> None:
        super().__init__(detail)
        self.field: Field | None = field
        self.schedule_kind = schedule_kind
        self.missing = missing


class InvalidCron(ValidationFailed):
    """A cron expression that does not parse."""

    code = "INVALID_CRON_EXPRESSION"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, "schedule", schedule_kind="cron")


class JobNotFound(DomainError):
    """The job does not exist (or was deleted)."""

    code = "JOB_NOT_FOUND"


class WebhookNotFound(DomainError):
    """The job has no webhook with that id."""

    code = "WEBHOOK_NOT_FOUND"


class Conflict(DomainError):
    """The command does not fit the job's history: a job created twice, or changed concurrently too often."""

    code = "CONFLICT"
