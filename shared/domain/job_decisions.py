"""The job aggregate's decisions: `decide(latest, command, now)` is the event a command appends to a job whose
latest event is `latest` (None: no job yet), or None when the command changes nothing. Pure: no I/O, nothing
read but the arguments (and fresh random event ids)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

import msgspec

from shared.contracts.jobs import (
    JobCreated,
    JobDeleted,
    JobEvent,
    JobPaused,
    JobResumed,
    JobState,
    JobUpdated,
    TaskSpec,
)
from shared.domain.errors import Conflict, JobNotFound, ValidationFailed, WebhookNotFound
from shared.domain.job_checks import (
    MAX_WEBHOOKS_PER_JOB,
    check_fires,
    check_runnable,
    check_size,
    check_timeout,
    check_window,
    checked_callback_url,
    checked_exclusions,
    checked_flow_control,
    checked_schedule,
    checked_task_name,
    checked_timezone,
    checked_utc,
)
from shared.domain.job_commands import (
    AddWebhook,
    ChangeJob,
    ChangeWebhook,
    CreateJob,
    DeleteJob,
    DisableWebhook,
    JobCommand,
    PauseJob,
    RemoveWebhook,
    ResumeJob,
)
from shared.domain.job_events import following, next_run
from shared.domain.job_patches import JOB_FIELDS, JobChanges, RetryPatch, TaskPatch
from shared.domain.webhook_decisions import (
    add_webhook,
    change_webhook,
    checked_webhook,
    disable_webhook,
    remove_webhook,
    webhook_spec,
)

# A change of any of these may leave an enabled job that never fires again.
_TIMING = frozenset({"schedule", "timezone", "enabled", "start_at", "end_at", "exclusions"})


def decide(latest: JobEvent | None, command: JobCommand, now: datetime) -> JobEvent | None:
    """The event `command` appends after `latest` (None: the job does not exist), or None when nothing changes.
    Raises a DomainError when the command cannot be carried out."""
    if isinstance(command, CreateJob):
        if latest is not None:
            raise Conflict(f"job {command.job_id} already exists")
        return create_job(command, now)
    if latest is None or isinstance(latest, JobDeleted):
        if isinstance(command, ChangeWebhook | RemoveWebhook):
            raise WebhookNotFound(f"webhook {command.webhook_id} not found")
        raise JobNotFound("job not found")
    match command:
        case ChangeJob():
            return change_job(latest, command, now)
        case PauseJob():
            return change_job(latest, ChangeJob(JobChanges(enabled=False)), now)
        case ResumeJob():
            return change_job(latest, ChangeJob(JobChanges(enabled=True), require_target=command.require_target), now)
        case DeleteJob():
            return delete_job(latest, now)
        case AddWebhook():
            return add_webhook(latest, command, now)
        case ChangeWebhook():
            return change_webhook(latest, command, now)
        case RemoveWebhook():
            return remove_webhook(latest, command, now)
        case DisableWebhook():
            return disable_webhook(latest, command, now)


def create_job(command: CreateJob, now: datetime) -> JobCreated:
    """A new job, with its webhooks, that fires at least once (or is paused)."""
    draft = command.draft
    timezone = checked_timezone(draft.timezone)
    schedule = checked_schedule(draft.schedule, timezone)
    if draft.task is not None:
        checked_task_name(draft.task.name)
    if len(draft.webhooks) > MAX_WEBHOOKS_PER_JOB:
        raise ValidationFailed(f"a job has at most {MAX_WEBHOOKS_PER_JOB} webhooks", "webhooks")
    webhooks = tuple(webhook_spec(checked_webhook(hook), uuid.uuid4(), now) for hook in draft.webhooks)
    check_timeout(draft.timeout_seconds, command.max_timeout_seconds)
    state = JobState(
        id=command.job_id,
        account_id=command.account_id,
        name=draft.name,
        type=draft.type,
        schedule=schedule,
        timezone=timezone,
        enabled=draft.enabled,
        webhooks=webhooks,
        task=draft.task,
        retry=draft.retry,
        timeout_seconds=draft.timeout_seconds,
        misfire=draft.misfire,
        overlap=draft.overlap,
        jitter_seconds=draft.jitter_seconds,
        start_at=checked_utc(draft.start_at),
        end_at=checked_utc(draft.end_at),
        exclusions=checked_exclusions(draft.exclusions),
        callback_url=checked_callback_url(draft.callback_url, "callback_url"),
        failure_callback_url=checked_callback_url(draft.failure_callback_url, "failure_callback_url"),
        flow_control=checked_flow_control(draft.flow_control),
        priority=draft.priority,
        description=draft.description,
        tags=draft.tags,
        metadata=draft.metadata,
        created_by=draft.created_by,
        created_at=now,
        updated_at=now,
    )
    check_window(state)
    if command.require_target:
        check_runnable(state)
    event = JobCreated(
        event_id=command.event_id,
        job_id=command.job_id,
        account_id=command.account_id,
        version=1,
        occurred_at=now,
        job=state,
        next_run_at=next_run(state, now),
    )
    check_fires(event)
    check_size(event)
    return event


def checked_changes(changes: JobChanges, max_timeout_seconds: float | None = None) -> JobChanges:
    """The changes checked where they can be without the job (time zone, task name, timeout, times), with the
    window's times in UTC. A caller may check them before loading the job; `change_job` checks them again."""
    values = changes.given()
    if "timezone" in values:
        checked_timezone(values["timezone"])
    task = values.get("task")
    if isinstance(task, TaskSpec | TaskPatch) and isinstance(task.name, str):
        checked_task_name(task.name)
    if "timeout_seconds" in values:
        check_timeout(values["timeout_seconds"], max_timeout_seconds)
    if "start_at" in values:
        changes = dataclasses.replace(changes, start_at=checked_utc(values["start_at"]))
    if "end_at" in values:
        changes = dataclasses.replace(changes, end_at=checked_utc(values["end_at"]))
    if "exclusions" in values:
        changes = dataclasses.replace(changes, exclusions=checked_exclusions(values["exclusions"]))
    if "callback_url" in values:
        url = checked_callback_url(values["callback_url"], "callback_url")
        changes = dataclasses.replace(changes, callback_url=url)
    if "failure_callback_url" in values:
        url = checked_callback_url(values["failure_callback_url"], "failure_callback_url")
        changes = dataclasses.replace(changes, failure_callback_url=url)
    if "flow_control" in values:
        changes = dataclasses.replace(changes, flow_control=checked_flow_control(values["flow_control"]))
    return changes


def change_job(latest: JobEvent, command: ChangeJob, now: datetime) -> JobEvent | None:
    """Change the fields given, applying patches to the job as it is; a new schedule or time zone recomputes the
    next run. A change of `enabled` alone is a pause or a resume. None when nothing changes."""
    changes = checked_changes(command.changes, command.max_timeout_seconds)
    current = latest.job
    given = changes.given()
    if isinstance(retry := given.get("retry"), RetryPatch):
        given["retry"] = retry.applied_to(current.retry)
    if isinstance(task := given.get("task"), TaskPatch):
        given["task"] = task.applied_to(current.task)
    state = msgspec.structs.replace(current, **given)
    if "schedule" in given or "timezone" in given:
        state = msgspec.structs.replace(state, schedule=checked_schedule(state.schedule, state.timezone))
    changed = tuple(f for f in JOB_FIELDS if getattr(current, f) != getattr(state, f))
    if not changed:
        return None
    check_window(state)
    if command.require_target and {"enabled", "task"} & set(changed):
        check_runnable(state)
    state = msgspec.structs.replace(state, updated_at=now)
    event: JobEvent
    if changed == ("enabled",):
        event = following(JobResumed if state.enabled else JobPaused, latest, state, now)
    else:
        event = following(JobUpdated, latest, state, now, changed=changed)
    if _TIMING & set(changed):
        check_fires(event)
    check_size(event)
    return event


def delete_job(latest: JobEvent, now: datetime) -> JobDeleted:
    """The job's last state, deleted: it never fires again."""
    state = msgspec.structs.replace(latest.job, updated_at=now)
    event = following(JobDeleted, latest, state, now)
    check_size(event)
    return event
