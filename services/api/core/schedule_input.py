"""A job's schedule from the input fields of its kind (job_input.py): a time without an offset is wall-clock time in
the job's zone, and a change keeps what it does not give of the job's current schedule. Refusals carry the neutral
field: "schedule" with the kind at fault, or "anchor" (when an interval's runs are counted from)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from services.api.core.api_errors import ValidationFailedError
from services.api.core.job_input import SCHEDULE_FIELDS
from shared.contracts.schedules import (
    CalendarRule,
    CalendarSchedule,
    CronSchedule,
    DateSchedule,
    IntervalSchedule,
    Schedule,
    kind_of,
)
from shared.domain.job_checks import YEARS, in_year_range
from shared.schedule.wallclock import to_instant, zone

# The neutral field (and schedule kind) each input field a refusal can name stands for (the task's too).
_NEUTRAL: dict[str, tuple[str, str | None]] = {
    **{name: ("schedule", kind) for kind, name in SCHEDULE_FIELDS.items()},
    "start_time": ("anchor", None),
    "task_name": ("task", None),
}


def refused(detail: str, name: str, *, missing: bool = False) -> ValidationFailedError:
    """A refusal of the input field `name`, naming the neutral field it stands for."""
    field, kind = _NEUTRAL[name]
    return ValidationFailedError(detail, field, missing=missing, schedule_kind=kind)


def _instant(moment: datetime, timezone: str, name: str) -> datetime:
    """A time without an offset is wall-clock time in the job's time zone."""
    out_of_range = refused(f"{name} is out of range: {YEARS}", name)
    try:
        instant = to_instant(moment, zone(timezone)) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # a wall time near year 1 or 9999 has no instant in every zone
        raise out_of_range from None
    if not in_year_range(instant):  # as every other time a job holds: showable in any zone
        raise out_of_range
    return instant


def _calendar(value: str | dict[str, Any], anchor: datetime) -> CalendarSchedule:
    if isinstance(value, str):
        return CalendarSchedule(rrule=value, anchor=anchor)
    try:
        rule = msgspec.convert(value, CalendarRule)
    except msgspec.ValidationError as exc:
        raise refused(f"calendar_rule: {exc}", "calendar_rule") from exc
    return CalendarSchedule(rule=rule, anchor=anchor)


def schedule_from(
    kind: str, given: Mapping[str, Any], timezone: str, now: datetime, current: Schedule | None
) -> Schedule:
    """The schedule of `kind` from the given fields, falling back on the current schedule of the same kind: an
    interval keeps its start when only its period changes and its period when only its start does; a calendar keeps
    its anchor; a schedule of a new kind counts from now."""
    same = current if current is not None and kind_of(current) == kind else None
    if kind == "cron":
        return CronSchedule(expression=given["cron_expression"])
    if kind == "interval":
        every = given.get("interval_seconds") or (same.every_seconds if isinstance(same, IntervalSchedule) else None)
        if every is None:
            raise refused("interval_seconds is required for interval jobs", "interval_seconds", missing=True)
        start = given.get("start_time")
        if start is not None:
            anchor = _instant(start, timezone, "start_time")
        else:
            anchor = same.anchor if isinstance(same, IntervalSchedule) else now
        return IntervalSchedule(every_seconds=every, anchor=anchor)
    if kind == "date":
        return DateSchedule(at=_instant(given["scheduled_time"], timezone, "scheduled_time"))
    return _calendar(given["calendar_rule"], same.anchor if isinstance(same, CalendarSchedule) else now)


def check_schedule_fields(kind: str, given: Mapping[str, Any], required: bool) -> None:
    """The fields of the other kinds of schedule are empty; the field of `kind` is given when `required`."""
    for other, name in SCHEDULE_FIELDS.items():
        if other != kind and given.get(name) is not None:
            raise refused(f"{name} does not apply to {kind} jobs", name)
    if given.get("start_time") is not None and kind != "interval":
        raise refused(f"start_time does not apply to {kind} jobs", "start_time")
    if required and given.get(SCHEDULE_FIELDS[kind]) is None:
        name = SCHEDULE_FIELDS[kind]
        raise refused(f"{name} is required for {kind} jobs", name, missing=True)
