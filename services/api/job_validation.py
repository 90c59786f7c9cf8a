"""Checks on command input that a schema cannot express: schedules, time zones, webhook targets and headers."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from services.api.domain_errors import InvalidCronError, ValidationFailedError
from shared.contracts.schedules import CronSchedule, Schedule, kind_of
from shared.schedule.errors import InvalidCronExpressionError, InvalidScheduleError, InvalidTimezoneError
from shared.schedule.occurrences import validate_cron, validate_schedule
from shared.schedule.wallclock import zone
from shared.worker.task_names import check_task_name

# The field that carries each kind of schedule (NEXUS names), for errors that point at it.
SCHEDULE_FIELDS = {
    "cron": "cron_expression",
    "interval": "interval_seconds",
    "date": "scheduled_time",
    "calendar": "calendar_rule",
}
# RFC 9110 token characters: what a header name may be made of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Set by the dispatcher on every request; a webhook may not override them.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)


def checked_timezone(name: str) -> str:
    try:
        zone(name)
    except InvalidTimezoneError as exc:
        raise ValidationFailedError(str(exc), field="timezone") from exc
    return name


def checked_cron(expression: str) -> CronSchedule:
    expression = " ".join(expression.split())
    try:
        validate_cron(expression)
    except InvalidCronExpressionError as exc:
        raise InvalidCronError(str(exc), field="cron_expression") from exc
    return CronSchedule(expression=expression)


def checked_schedule(schedule: Schedule, timezone: str) -> Schedule:
    """A schedule that parses; cron expressions normalised."""
    if isinstance(schedule, CronSchedule):
        return checked_cron(schedule.expression)
    try:
        validate_schedule(schedule, timezone)
    except InvalidScheduleError as exc:
        raise ValidationFailedError(str(exc), field=SCHEDULE_FIELDS[kind_of(schedule)]) from exc
    return schedule


def checked_task_name(name: str) -> str:
    """Task names become subject tokens (see shared.worker.task_names)."""
    try:
        return check_task_name(name)
    except ValueError as exc:
        raise ValidationFailedError(str(exc), field="task_name") from exc


def checked_url(url: str) -> str:
    """An absolute http(s) URL with a host, without whitespace or control characters."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValidationFailedError("url must not contain whitespace or control characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailedError(f"url is not a valid URL: {exc}", field="url") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationFailedError(f"url must use http or https, not {parts.scheme or 'no scheme'!r}", field="url")
    if not parts.hostname:
        raise ValidationFailedError("url must name a host", field="url")
    try:
        parts.hostname.encode("idna")
    except UnicodeError as exc:
        raise ValidationFailedError(f"url host {parts.hostname!r} is not a valid host name", field="url") from exc
    if port == 0:
        raise ValidationFailedError("url port must be between 1 and 65535", field="url")
    return url


def checked_headers(headers: dict[str, str]) -> dict[str, str]:
    """Valid header names, values without control characters (tab allowed), nothing the dispatcher sets itself."""
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValidationFailedError(f"header name {name!r} is not a valid HTTP header name", field="headers")
        if name.lower() in _RESERVED_HEADERS:
            raise ValidationFailedError(f"header {name!r} is set by the scheduler, not by a webhook", field="headers")
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            raise ValidationFailedError(f"header {name!r} has a control character in its value", field="headers")
    return headers
