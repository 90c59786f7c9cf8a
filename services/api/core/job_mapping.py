"""A new job, or the changes to a job, from a JobInput (job_input.py), for every surface that edits jobs by those
fields. A time without an offset is wall-clock time in the job's zone; the retry and task fields become patches
applied to the job as it is when the change is decided. Errors carry the neutral field (a shared.domain.errors.Field,
or "anchor": when an interval's runs are counted from) and the schedule's kind: each surface names it its own way."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
from msgspec import UNSET, UnsetType

from services.api.core.api_errors import ValidationFailedError, translated
from services.api.core.fields import MisfirePolicyBody, misfire_policy_of
from services.api.core.job_input import SCHEDULE_FIELDS, JobInput
from shared.contracts.jobs import RetryPolicy, TaskSpec
from shared.contracts.schedules import (
    CalendarRule,
    CalendarSchedule,
    CronSchedule,
    DateSchedule,
    IntervalSchedule,
    Schedule,
    kind_of,
)
from shared.domain import job_checks
from shared.domain.job_commands import JobDraft
from shared.domain.job_patches import JobChanges, RetryPatch, TaskPatch
from shared.schedule.wallclock import to_instant, zone

# The neutral field (and schedule kind) each input field a refusal here is about stands for.
_NEUTRAL: dict[str, tuple[str, str | None]] = {
    **{name: ("schedule", kind) for kind, name in SCHEDULE_FIELDS.items()},
    "start_time": ("anchor", None),
    "task_name": ("task", None),
}


class ScheduledJob(Protocol):
    """A job as a change finds it: its schedule and time zone (a read model's record, or the job's state)."""

    @property
    def schedule(self) -> Schedule: ...

    @property
    def timezone(self) -> str: ...


def checked_timezone(name: str) -> str:
    """An IANA time zone name, or the api's ValidationFailedError."""
    with translated():
        return job_checks.checked_timezone(name)


def checked_schedule(schedule: Schedule, timezone: str) -> Schedule:
    """A schedule that parses (cron expressions normalised), or the api's ValidationFailedError."""
    with translated():
        return job_checks.checked_schedule(schedule, timezone)


def _refused(detail: str, name: str, *, missing: bool = False) -> ValidationFailedError:
    field, kind = _NEUTRAL[name]
    return ValidationFailedError(detail, field, missing=missing, schedule_kind=kind)


def _defaults() -> dict[str, Any]:
    """What a new job has where its input gives nothing."""
    return {
        "kind": "cron",
        "timezone": "UTC",
        "enabled": True,
        "task_args": [],
        "task_kwargs": {},
        "max_retries": 3,
        "retry_delay": 60,
        "retry_backoff": True,
        "priority": 5,
        "misfire": MisfirePolicyBody(),
        "overlap": "allow",
        "jitter_seconds": 0.0,
        "tags": [],
        "metadata": {},
    }


def _instant(moment: datetime, timezone: str, name: str) -> datetime:
    """A time without an offset is wall-clock time in the job's time zone."""
    out_of_range = _refused(f"{name} is out of range: {job_checks.YEARS}", name)
    try:
        instant = to_instant(moment, zone(timezone)) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # a wall time near year 1 or 9999 has no instant in every zone
        raise out_of_range from None
    if not job_checks.in_year_range(instant):  # as every other time a job holds: showable in any zone
        raise out_of_range
    return instant


def _calendar(value: str | dict[str, Any], anchor: datetime) -> CalendarSchedule:
    if isinstance(value, str):
        return CalendarSchedule(rrule=value, anchor=anchor)
    try:
        rule = msgspec.convert(value, CalendarRule)
    except msgspec.ValidationError as exc:
        raise _refused(f"calendar_rule: {exc}", "calendar_rule") from exc
    return CalendarSchedule(rule=rule, anchor=anchor)


def _schedule(kind: str, given: Mapping[str, Any], timezone: str, now: datetime, current: Schedule | None) -> Schedule:
    """The schedule of `kind` from the given fields, falling back on the current schedule of the same kind: an
    interval keeps its start when only its period changes and its period when only its start does; a calendar keeps
    its anchor; a schedule of a new kind counts from now."""
    same = current if current is not None and kind_of(current) == kind else None
    if kind == "cron":
        return CronSchedule(expression=given["cron_expression"])
    if kind == "interval":
        every = given.get("interval_seconds") or (same.every_seconds if isinstance(same, IntervalSchedule) else None)
        if every is None:
            raise _refused("interval_seconds is required for interval jobs", "interval_seconds", missing=True)
        start = given.get("start_time")
        if start is not None:
            anchor = _instant(start, timezone, "start_time")
        else:
            anchor = same.anchor if isinstance(same, IntervalSchedule) else now
        return IntervalSchedule(every_seconds=every, anchor=anchor)
    if kind == "date":
        return DateSchedule(at=_instant(given["scheduled_time"], timezone, "scheduled_time"))
    return _calendar(given["calendar_rule"], same.anchor if isinstance(same, CalendarSchedule) else now)


def _check_fields(kind: str, given: Mapping[str, Any], required: bool) -> None:
    """The fields of the other kinds of schedule are empty; the field of `kind` is given when `required`."""
    for other, name in SCHEDULE_FIELDS.items():
        if other != kind and given.get(name) is not None:
            raise _refused(f"{name} does not apply to {kind} jobs", name)
    if given.get("start_time") is not None and kind != "interval":
        raise _refused(f"start_time does not apply to {kind} jobs", "start_time")
    if required and given.get(SCHEDULE_FIELDS[kind]) is None:
        name = SCHEDULE_FIELDS[kind]
        raise _refused(f"{name} is required for {kind} jobs", name, missing=True)


def _retry(max_retries: int, retry_delay: float, retry_backoff: bool) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_retries + 1,
        base_delay_seconds=retry_delay,
        backoff="exponential" if retry_backoff else "fixed",
        max_delay_seconds=max(RetryPolicy().max_delay_seconds, retry_delay),
    )


def draft_from(given: JobInput, now: datetime) -> JobDraft:
    """A new job: the fields not given take their defaults; the field of the job's kind is required."""
    data = _defaults() | given.given()
    if "name" not in data:
        raise ValidationFailedError("name is required", "name", missing=True)
    timezone = checked_timezone(data["timezone"])
    _check_fields(data["kind"], data, required=True)
    task_name, args, kwargs = data.get("task_name"), data["task_args"], data["task_kwargs"]
    if not task_name and (args or kwargs):
        raise _refused("task_args and task_kwargs need a task_name", "task_name")
    return JobDraft(
        name=data["name"],
        schedule=_schedule(data["kind"], data, timezone, now, None),
        timezone=timezone,
        enabled=data["enabled"],
        task=TaskSpec(name=task_name, args=tuple(args), kwargs=kwargs) if task_name else None,
        retry=_retry(data["max_retries"], data["retry_delay"], data["retry_backoff"]),
        misfire=misfire_policy_of(data["misfire"]),
        overlap=data["overlap"],
        jitter_seconds=data["jitter_seconds"],
        start_at=data.get("start_at"),
        end_at=data.get("end_at"),
        priority=data["priority"],
        description=data.get("description"),
        tags=tuple(dict.fromkeys(data["tags"])),
        metadata=data["metadata"],
        created_by=data.get("created_by"),
    )


def changes_from(given: JobInput, current: ScheduledJob, now: datetime) -> JobChanges:
    """The changes the fields given make to `current`. Schedule fields must belong to the job's kind (or to the new
    `kind`, whose field is then required)."""
    data = given.given()
    current_kind = kind_of(current.schedule)
    kind = data.get("kind", current_kind)
    _check_fields(kind, data, required=kind != current_kind)
    timezone = checked_timezone(data.get("timezone", current.timezone))
    schedule: Schedule | UnsetType = UNSET
    if kind != current_kind or any(data.get(name) is not None for name in (SCHEDULE_FIELDS[kind], "start_time")):
        schedule = _schedule(kind, data, timezone, now, current.schedule)

    # Patches, applied to the job's event-sourced state when the change is decided: only the fields given change.
    task: TaskPatch | UnsetType = UNSET
    if {"task_name", "task_args", "task_kwargs"} & data.keys():
        task = TaskPatch(
            name=data.get("task_name") or None if "task_name" in data else UNSET,
            args=tuple(data["task_args"]) if "task_args" in data else UNSET,
            kwargs=data.get("task_kwargs", UNSET),
        )
    retry: RetryPatch | UnsetType = UNSET
    if {"max_retries", "retry_delay", "retry_backoff"} & data.keys():
        retry = RetryPatch(
            max_attempts=data["max_retries"] + 1 if "max_retries" in data else UNSET,
            base_delay_seconds=data.get("retry_delay", UNSET),
            growing=data.get("retry_backoff", UNSET),
        )
    return JobChanges(
        name=data.get("name", UNSET),
        schedule=schedule,
        timezone=timezone if "timezone" in data else UNSET,
        enabled=data.get("enabled", UNSET),
        task=task,
        retry=retry,
        misfire=misfire_policy_of(data["misfire"]) if "misfire" in data else UNSET,
        overlap=data.get("overlap", UNSET),
        jitter_seconds=data.get("jitter_seconds", UNSET),
        start_at=data.get("start_at", UNSET),
        end_at=data.get("end_at", UNSET),
        priority=data.get("priority", UNSET),
        description=data.get("description", UNSET),
        tags=tuple(dict.fromkeys(data["tags"])) if "tags" in data else UNSET,
        metadata=data.get("metadata", UNSET),
    )
