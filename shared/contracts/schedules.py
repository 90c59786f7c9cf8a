"""Schedule specifications carried inside job state. Tagged so new kinds can be added without breaking readers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec


class CronSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="cron", tag_field="kind"):
    """A cron expression: 5 fields, or 6 with seconds first; @hourly-style macros allowed."""

    expression: str


class IntervalSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="interval", tag_field="kind"):
    """Every `every_seconds` seconds from `anchor`; wall clocks and daylight saving do not apply."""

    every_seconds: Annotated[float, msgspec.Meta(gt=0)]
    anchor: datetime


class DateSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="date", tag_field="kind"):
    """Exactly once, at `at` (UTC)."""

    at: datetime


class CalendarRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Wall-clock times on matching days. Empty lists match every day; a day must match every non-empty list.

    `weekdays`: 1 = Monday ... 7 = Sunday (0 is also Sunday, as in cron). `days_of_month`: 1..31, or -1 for the
    last day. `times`: "HH:MM" or "HH:MM:SS" (`time` is one more, as the original clients send it).
    `exclude_dates`: days on which nothing fires.
    """

    weekdays: tuple[int, ...] = ()
    days_of_month: tuple[int, ...] = ()
    months: tuple[int, ...] = ()
    time: str | None = None
    times: tuple[str, ...] = ()
    exclude_dates: tuple[date, ...] = ()


class Exclusions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Occurrences a job does not have, whatever its schedule: those on `dates` (days in the job's time zone) and those
    whose wall-clock time there matches one of `rules` (cron expressions: `* * 25 12 *` is all of 25 December,
    `0 9 * * 1` Mondays at 09:00). An excluded occurrence is not an occurrence at all: nothing fires or is recorded.
    """

    dates: tuple[date, ...] = ()
    rules: tuple[str, ...] = ()


class CalendarSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="calendar", tag_field="kind"):
    """A calendar rule, or an RFC 5545 RRULE evaluated in wall-clock time from `anchor` (its DTSTART if it has none)."""

    rule: CalendarRule | None = None
    rrule: str | None = None
    anchor: datetime


ChainOutcome = Literal["success", "failure", "completion"]


class AfterSchedule(msgspec.Struct, frozen=True, kw_only=True, tag="after", tag_field="kind"):
    """A link of a chain: the job fires when an occurrence of job `job_id` ends `on` success (a delivery answered
    2xx, a task returned), failure (dead-lettered after its retries) or completion (either). No times of its own."""

    job_id: UUID
    on: ChainOutcome = "success"


Schedule = CronSchedule | IntervalSchedule | DateSchedule | CalendarSchedule | AfterSchedule


def kind_of(schedule: Schedule) -> str:
    """The schedule's kind: cron, interval, date, calendar or after (its tag)."""
    tag = schedule.__struct_config__.tag
    assert isinstance(tag, str)
    return tag
