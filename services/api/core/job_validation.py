"""The domain's checks the api's surfaces call on their own (a schedule previewed as it is typed, a time zone read
from a body), raising the api's errors. The checks themselves are in shared.domain.job_checks."""

from __future__ import annotations

from services.api.core.api_errors import translated
from shared.contracts.schedules import Schedule
from shared.domain import job_checks


def checked_timezone(name: str) -> str:
    """An IANA time zone name, or the api's ValidationFailedError."""
    with translated():
        return job_checks.checked_timezone(name)


def checked_schedule(schedule: Schedule, timezone: str) -> Schedule:
    """A schedule that parses (cron expressions normalised), or the api's ValidationFailedError."""
    with translated():
        return job_checks.checked_schedule(schedule, timezone)
