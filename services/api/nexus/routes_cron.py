"""Cron tools of the NEXUS API: validate an expression (with its next runs) and the presets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Body

from services.api.core.schedule_words import describe
from services.api.http.openapi_docs import BODY, nexus_error_responses
from services.api.nexus.schemas import CronPreset, CronValidateRequest, CronValidation
from shared.contracts.schedules import CronSchedule
from shared.schedule.errors import InvalidScheduleError
from shared.schedule.occurrences import next_after, validate_cron
from shared.schedule.wallclock import zone

NEXT_RUNS = 5

PRESETS: dict[str, CronPreset] = {
    name: CronPreset(expression=expression, description=description)
    for name, expression, description in (
        ("every_minute", "* * * * *", "Every minute"),
        ("every_5_minutes", "*/5 * * * *", "Every 5 minutes"),
        ("every_15_minutes", "*/15 * * * *", "Every 15 minutes"),
        ("every_30_minutes", "*/30 * * * *", "Every 30 minutes"),
        ("hourly", "0 * * * *", "Every hour"),
        ("daily_midnight", "0 0 * * *", "Daily at midnight"),
        ("daily_noon", "0 12 * * *", "Daily at noon"),
        ("weekly_sunday", "0 0 * * 0", "Weekly on Sunday at midnight"),
        ("weekly_monday", "0 0 * * 1", "Weekly on Monday at midnight"),
        ("monthly", "0 0 1 * *", "Monthly on the 1st at midnight"),
        ("yearly", "0 0 1 1 *", "Yearly on January 1st at midnight"),
        ("weekdays_9am", "0 9 * * 1-5", "Weekdays at 9:00 AM"),
        ("weekends_10am", "0 10 * * 0,6", "Weekends at 10:00 AM"),
    )
}


def _next_runs(schedule: CronSchedule, timezone: str) -> list[datetime]:
    """The next runs from now; in a worker thread, since a rare expression searches far ahead."""
    runs: list[datetime] = []
    after = datetime.now(UTC)
    while len(runs) < NEXT_RUNS and (found := next_after(schedule, timezone, after)) is not None:
        runs.append(found)
        after = found
    return runs


class NexusCronController(Controller):
    path = "/cron"
    tags = ["nexus cron"]

    @post(
        "/validate",
        status_code=200,
        summary="Validate a cron expression; its description and next 5 runs",
        responses=nexus_error_responses(*BODY),
    )
    async def validate(self, data: Annotated[CronValidateRequest, Body()]) -> CronValidation:
        expression = " ".join(data.expression.split())
        try:
            validate_cron(expression)
            zone(data.timezone)
        except InvalidScheduleError as exc:
            return CronValidation(is_valid=False, description=None, next_runs=[], error=str(exc))
        runs = await asyncio.to_thread(_next_runs, CronSchedule(expression=expression), data.timezone)
        return CronValidation(is_valid=True, description=describe(expression), next_runs=runs, error=None)

    @get("/presets", summary="The 13 common cron presets")
    async def presets(self) -> dict[str, CronPreset]:
        return PRESETS
