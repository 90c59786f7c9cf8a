"""A job as the dashboard's pages show it, from the core's JobRecord: the words of the NEXUS document (its form is
that document's), with the schedule itself for describing it and listing its next runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.api.core.fields import MisfirePolicyBody, misfire_policy_body
from services.api.core.job_queries import JobRecord
from shared.contracts.jobs import FlowControl
from shared.contracts.schedules import CronSchedule, Exclusions, Schedule, kind_of


def whole(seconds: float) -> int | float:
    """60.0 shown as 60."""
    return int(seconds) if seconds.is_integer() else seconds


@dataclass(frozen=True, slots=True)
class JobView:
    """`id` is the job's number; `uuid` its id."""

    id: int
    uuid: str
    name: str
    description: str | None
    schedule: Schedule
    job_type: str
    cron_expression: str | None
    task_name: str | None
    task_args: list[Any]
    task_kwargs: dict[str, Any]
    timezone: str
    is_active: bool
    status: str | None
    max_retries: int
    retry_delay: int | float
    retry_backoff: bool
    priority: int
    misfire_policy: MisfirePolicyBody
    overlap_policy: str
    jitter_seconds: int | float
    start_at: datetime | None
    end_at: datetime | None
    exclusions: Exclusions | None
    callback_url: str | None
    failure_callback_url: str | None
    flow_control: FlowControl | None
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None
    next_run_at: datetime | None


def job_view(job: JobRecord) -> JobView:
    task = job.task
    return JobView(
        id=job.number,
        uuid=str(job.id),
        name=job.name,
        description=job.description,
        schedule=job.schedule,
        job_type=kind_of(job.schedule),
        cron_expression=job.schedule.expression if isinstance(job.schedule, CronSchedule) else None,
        task_name=task.name if task else None,
        task_args=list(task.args) if task else [],
        task_kwargs=task.kwargs if task else {},
        timezone=job.timezone,
        is_active=job.enabled,
        status=job.status,
        max_retries=job.retry.max_attempts - 1,
        retry_delay=whole(job.retry.base_delay_seconds),
        retry_backoff=job.retry.backoff != "fixed",
        priority=job.priority,
        misfire_policy=misfire_policy_body(job.misfire),
        overlap_policy=job.overlap,
        jitter_seconds=whole(job.jitter_seconds),
        start_at=job.start_at,
        end_at=job.end_at,
        exclusions=job.exclusions,
        callback_url=job.callback_url,
        failure_callback_url=job.failure_callback_url,
        flow_control=job.flow_control,
        tags=job.tags,
        metadata=job.metadata,
        created_by=job.created_by,
        created_at=job.created_at,
        updated_at=job.updated_at,
        last_run_at=job.last_run_at,
        next_run_at=job.next_run_at,
    )
