"""A new job, or the changes to a job, from a JobInput (job_input.py), for every surface that edits jobs by those
fields: the schedule from the fields of its kind (schedule_input.py), the retry and task fields as patches applied
to the job as it is when the change is decided. Errors carry the neutral field and the schedule's kind: each surface
names it its own way."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from msgspec import UNSET, UnsetType

from services.api.core.api_errors import ValidationFailedError, translated
from services.api.core.fields import MisfirePolicyBody, exclusions_of, flow_control_of, misfire_policy_of
from services.api.core.job_input import SCHEDULE_FIELDS, JobInput
from services.api.core.schedule_input import check_schedule_fields, refused, schedule_from
from shared.contracts.jobs import RetryPolicy, TaskSpec
from shared.contracts.schedules import Exclusions, Schedule, kind_of
from shared.domain import job_checks
from shared.domain.job_commands import JobDraft
from shared.domain.job_patches import JobChanges, RetryPatch, TaskPatch


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


def checked_exclusions(exclusions: Exclusions | None) -> Exclusions | None:
    """Exclusions within their limits whose rules parse, or the api's ValidationFailedError."""
    with translated():
        return job_checks.checked_exclusions(exclusions)


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
    check_schedule_fields(data["kind"], data, required=True)
    task_name, args, kwargs = data.get("task_name"), data["task_args"], data["task_kwargs"]
    if not task_name and (args or kwargs):
        raise refused("task_args and task_kwargs need a task_name", "task_name")
    return JobDraft(
        name=data["name"],
        schedule=schedule_from(data["kind"], data, timezone, now, None),
        timezone=timezone,
        enabled=data["enabled"],
        task=TaskSpec(name=task_name, args=tuple(args), kwargs=kwargs) if task_name else None,
        retry=_retry(data["max_retries"], data["retry_delay"], data["retry_backoff"]),
        misfire=misfire_policy_of(data["misfire"]),
        overlap=data["overlap"],
        jitter_seconds=data["jitter_seconds"],
        start_at=data.get("start_at"),
        end_at=data.get("end_at"),
        exclusions=exclusions_of(data.get("exclusions")),
        callback_url=data.get("callback_url"),
        failure_callback_url=data.get("failure_callback_url"),
        flow_control=flow_control_of(data.get("flow_control")),
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
    check_schedule_fields(kind, data, required=kind != current_kind)
    timezone = checked_timezone(data.get("timezone", current.timezone))
    schedule: Schedule | UnsetType = UNSET
    if kind != current_kind or any(data.get(name) is not None for name in (SCHEDULE_FIELDS[kind], "start_time")):
        schedule = schedule_from(kind, data, timezone, now, current.schedule)

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
        exclusions=exclusions_of(data["exclusions"]) if "exclusions" in data else UNSET,
        callback_url=data.get("callback_url", UNSET),
        failure_callback_url=data.get("failure_callback_url", UNSET),
        flow_control=flow_control_of(data["flow_control"]) if "flow_control" in data else UNSET,
        priority=data.get("priority", UNSET),
        description=data.get("description", UNSET),
        tags=tuple(dict.fromkeys(data["tags"])) if "tags" in data else UNSET,
        metadata=data.get("metadata", UNSET),
    )
