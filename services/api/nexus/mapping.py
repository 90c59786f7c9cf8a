"""Between the NEXUS surface's fields and the job state both surfaces share."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from services.api.core.api_errors import ValidationFailedError
from services.api.core.error_fields import SCHEDULE_FIELDS
from services.api.core.fields import MisfirePolicyBody, misfire_policy_body, misfire_policy_of
from services.api.core.job_validation import checked_timezone
from services.api.nexus.schemas import CalendarInput, NexusJob, NexusJobCreate, NexusJobUpdate
from shared.contracts.jobs import MisfirePolicy, RetryPolicy, TaskSpec
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
from shared.domain.job_commands import JobDraft
from shared.domain.job_patches import JobChanges, RetryPatch, TaskPatch
from shared.schedule.wallclock import to_instant, zone


def _instant(moment: datetime, timezone: str, field: str) -> datetime:
    """A time without an offset is wall-clock time in the job's time zone."""
    out_of_range = ValidationFailedError(f"{field} is out of range: {YEARS}", field=field)
    try:
        instant = to_instant(moment, zone(timezone)) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # a wall time near year 1 or 9999 has no instant in every zone
        raise out_of_range from None
    if not in_year_range(instant):  # as every other time a job holds: showable in any zone
        raise out_of_range
    return instant


def _calendar(value: CalendarInput, anchor: datetime) -> CalendarSchedule:
    if isinstance(value, str):
        return CalendarSchedule(rrule=value, anchor=anchor)
    try:
        rule = msgspec.convert(value, CalendarRule)
    except msgspec.ValidationError as exc:
        raise ValidationFailedError(f"calendar_rule: {exc}", field="calendar_rule") from exc
    return CalendarSchedule(rule=rule, anchor=anchor)


def _schedule(kind: str, fields: Mapping[str, Any], timezone: str, now: datetime, current: Schedule | None) -> Schedule:
    """The schedule of `kind` from the given fields, falling back on the current schedule of the same kind."""
    same = current if current is not None and kind_of(current) == kind else None
    if kind == "cron":
        return CronSchedule(expression=fields["cron_expression"])
    if kind == "interval":
        every = fields.get("interval_seconds") or (same.every_seconds if isinstance(same, IntervalSchedule) else None)
        start = fields.get("start_time")
        if start is not None:
            anchor = _instant(start, timezone, "start_time")
        else:
            anchor = same.anchor if isinstance(same, IntervalSchedule) else now
        assert every is not None
        return IntervalSchedule(every_seconds=every, anchor=anchor)
    if kind == "date":
        return DateSchedule(at=_instant(fields["scheduled_time"], timezone, "scheduled_time"))
    return _calendar(fields["calendar_rule"], same.anchor if isinstance(same, CalendarSchedule) else now)


def _check_fields(kind: str, given: Mapping[str, Any], required: bool) -> None:
    for other, name in SCHEDULE_FIELDS.items():
        if other != kind and given.get(name) is not None:
            raise ValidationFailedError(f"{name} does not apply to {kind} jobs", field=name)
    if given.get("start_time") is not None and kind != "interval":
        raise ValidationFailedError(f"start_time does not apply to {kind} jobs", field="start_time")
    if required and given.get(SCHEDULE_FIELDS[kind]) is None:
        raise ValidationFailedError(
            f"{SCHEDULE_FIELDS[kind]} is required for {kind} jobs", field=SCHEDULE_FIELDS[kind], missing=True
        )


def _retry(max_retries: int, retry_delay: float, retry_backoff: bool) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_retries + 1,
        base_delay_seconds=retry_delay,
        backoff="exponential" if retry_backoff else "fixed",
        max_delay_seconds=max(RetryPolicy().max_delay_seconds, retry_delay),
    )


def draft_from(data: NexusJobCreate, now: datetime) -> JobDraft:
    timezone = checked_timezone(data.timezone)
    given = msgspec.structs.asdict(data)
    _check_fields(data.job_type, given, required=True)
    task = (
        TaskSpec(name=data.task_name, args=tuple(data.task_args), kwargs=data.task_kwargs) if data.task_name else None
    )
    if task is None and (data.task_args or data.task_kwargs):
        raise ValidationFailedError("task_args and task_kwargs need a task_name", field="task_name")
    return JobDraft(
        name=data.name,
        schedule=_schedule(data.job_type, given, timezone, now, None),
        timezone=timezone,
        enabled=data.is_active,
        task=task,
        retry=_retry(data.max_retries, data.retry_delay, data.retry_backoff),
        misfire=misfire_policy_of(data.misfire_policy or MisfirePolicyBody()),
        overlap=data.overlap_policy,
        jitter_seconds=data.jitter_seconds,
        start_at=data.start_at,
        end_at=data.end_at,
        priority=data.priority,
        description=data.description,
        tags=tuple(dict.fromkeys(data.tags)),
        metadata=data.metadata,
        created_by=data.created_by,
    )


def changes_from(data: NexusJobUpdate, current: NexusJob, now: datetime) -> JobChanges:
    """What a PUT changes. Schedule fields must belong to the job's type (or to the new `job_type`)."""
    given = {k: v for k, v in msgspec.structs.asdict(data).items() if not isinstance(v, UnsetType)}
    kind = given.get("job_type", current.job_type)
    _check_fields(kind, given, required=kind != current.job_type)
    timezone = checked_timezone(given.get("timezone", current.timezone))
    schedule: Schedule | UnsetType = UNSET
    if kind != current.job_type or any(given.get(name) is not None for name in (SCHEDULE_FIELDS[kind], "start_time")):
        schedule = _schedule(kind, given, timezone, now, schedule_of(current))

    # Patches, applied to the job's event-sourced state when the change is decided: only the fields given change.
    task: TaskPatch | UnsetType = UNSET
    if {"task_name", "task_args", "task_kwargs"} & given.keys():
        task = TaskPatch(
            name=given.get("task_name") or None if "task_name" in given else UNSET,
            args=tuple(given["task_args"]) if "task_args" in given else UNSET,
            kwargs=given.get("task_kwargs", UNSET),
        )
    retry: RetryPatch | UnsetType = UNSET
    if {"max_retries", "retry_delay", "retry_backoff"} & given.keys():
        retry = RetryPatch(
            max_attempts=given["max_retries"] + 1 if "max_retries" in given else UNSET,
            base_delay_seconds=given.get("retry_delay", UNSET),
            growing=given.get("retry_backoff", UNSET),
        )
    return JobChanges(
        name=given.get("name", UNSET),
        schedule=schedule,
        timezone=timezone if "timezone" in given else UNSET,
        enabled=given.get("is_active", UNSET),
        task=task,
        retry=retry,
        misfire=misfire_policy_of(given["misfire_policy"]) if "misfire_policy" in given else UNSET,
        overlap=given.get("overlap_policy", UNSET),
        jitter_seconds=given.get("jitter_seconds", UNSET),
        start_at=given.get("start_at", UNSET),
        end_at=given.get("end_at", UNSET),
        priority=given.get("priority", UNSET),
        description=given.get("description", UNSET),
        tags=tuple(dict.fromkeys(given["tags"])) if "tags" in given else UNSET,
        metadata=given.get("metadata", UNSET),
    )


def schedule_of(job: NexusJob) -> Schedule:
    """The schedule a NexusJob describes (for updates that keep part of it)."""
    if job.job_type == "cron":
        assert job.cron_expression is not None
        return CronSchedule(expression=job.cron_expression)
    if job.job_type == "interval":
        assert job.interval_seconds is not None
        return IntervalSchedule(every_seconds=job.interval_seconds, anchor=job.interval_anchor or job.created_at)
    if job.job_type == "date":
        assert job.scheduled_time is not None
        return DateSchedule(at=job.scheduled_time)
    assert job.calendar_rule is not None
    return _calendar(job.calendar_rule, job.created_at)


def whole(seconds: float) -> int | float:
    """60.0 as 60: the document's clients see integers where a whole number of seconds was given."""
    return int(seconds) if seconds.is_integer() else seconds


def nexus_job(row: asyncpg.Record) -> NexusJob:
    """A read-model row (see read_models.NEXUS_JOB_SELECT) as this surface shows it."""
    schedule = msgspec.convert(row["schedule"], Schedule)
    task = msgspec.convert(row["task"], TaskSpec) if row["task"] else None
    retry = msgspec.convert(row["retry"] or {}, RetryPolicy)
    calendar: dict[str, Any] | str | None = None
    if isinstance(schedule, CalendarSchedule):
        calendar = schedule.rrule if schedule.rrule is not None else msgspec.to_builtins(schedule.rule)
    return NexusJob(
        id=row["number"],
        uuid=str(row["id"]),
        name=row["name"],
        description=row["description"],
        job_type=kind_of(schedule),  # type: ignore[arg-type]
        cron_expression=schedule.expression if isinstance(schedule, CronSchedule) else None,
        interval_seconds=whole(schedule.every_seconds) if isinstance(schedule, IntervalSchedule) else None,
        interval_anchor=schedule.anchor if isinstance(schedule, IntervalSchedule) else None,
        scheduled_time=schedule.at if isinstance(schedule, DateSchedule) else None,
        calendar_rule=calendar,
        task_name=task.name if task else None,
        task_args=list(task.args) if task else [],
        task_kwargs=task.kwargs if task else {},
        timezone=row["timezone"],
        is_active=row["enabled"],
        status=row["status"],
        max_retries=retry.max_attempts - 1,
        retry_delay=whole(retry.base_delay_seconds),
        retry_backoff=retry.backoff != "fixed",
        priority=row["priority"],
        misfire_policy=misfire_policy_body(msgspec.convert(row["misfire"], MisfirePolicy)),
        overlap_policy=row["overlap"],
        jitter_seconds=whole(row["jitter_seconds"]),
        start_at=row["start_at"],
        end_at=row["end_at"],
        tags=list(row["tags"]),
        metadata=row["metadata"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_run_at=row["last_run_at"],
        next_run_at=row["next_run_at"],
        created_by=row["created_by"],
    )
