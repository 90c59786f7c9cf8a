"""The job form: one form for every kind of job, what it holds as typed (so it can be shown again with its errors),
filled in from a job for editing, and each error placed on the box at fault. The form is read into the core's job
input (form_input.py), so the dashboard checks a job as the APIs do and shows the same messages."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, get_args
from uuid import UUID

import msgspec

from services.api.core.api_errors import ValidationFailedError
from services.api.core.fields import HttpMethod, JobKind
from services.api.core.job_input import input_field
from services.api.core.webhook_queries import WebhookRecord
from services.api.ui.job_view import JobView, whole
from shared.contracts.jobs import FlowControl
from shared.contracts.schedules import CalendarSchedule, CronSchedule, DateSchedule, Exclusions, IntervalSchedule
from shared.schedule.wallclock import to_wall, zone

KINDS: tuple[str, ...] = get_args(JobKind)
METHODS: tuple[str, ...] = ("POST", *(m for m in get_args(HttpMethod) if m != "POST"))
_AT_FIELD = re.compile(r"at `\$\.([a-z_]+)")
# The form's box for each field of the job input (services/api/core/job_input.py) that the form names otherwise.
_BOXES = {
    "kind": "job_type",
    "enabled": "is_active",
    "misfire": "misfire_policy",
    "overlap": "overlap_policy",
    "flow_control": "flow_key",
}


def box_of(field: str | None, schedule_kind: str | None = None) -> str | None:
    """The form's name for a field an error names (the core's neutral names through the job input's)."""
    name = input_field(field, schedule_kind)
    return None if name is None else _BOXES.get(name, name)


class FormError(Exception):
    """A form value that cannot be used: the message and the field it belongs to (None: the whole form)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @classmethod
    def of(cls, exc: ValidationFailedError | msgspec.ValidationError) -> FormError:
        """The API's own error, placed on its box."""
        if isinstance(exc, ValidationFailedError):
            return cls(exc.detail, box_of(exc.field, exc.schedule_kind))
        found = _AT_FIELD.search(str(exc))
        return cls(str(exc), box_of(found[1]) if found else None)


@dataclass(slots=True)
class JobForm:
    """What the form holds, as typed (so it can be shown again with its errors)."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    @property
    def kind(self) -> str:
        """The schedule kind, for showing the form (an unknown one is refused when the form is read)."""
        kind = self.get("job_type", "cron")
        return kind if kind in KINDS else "cron"

    @property
    def action(self) -> str:
        return "task" if self.get("action") == "task" else "webhook"

    def check_choices(self) -> None:
        if self.get("job_type", "cron") not in KINDS:
            raise FormError(f"job_type must be one of {', '.join(KINDS)}", "job_type")
        if self.get("action", "webhook") not in ("webhook", "task"):
            raise FormError("choose a webhook or a task", "action")

    def fail(self, error: FormError) -> None:
        self.errors[error.field or "form"] = error.message


def form_from(raw: Mapping[str, Any]) -> JobForm:
    return JobForm(values={k: str(v) for k, v in raw.items() if k != "_csrf_token" and isinstance(v, str)})


def account_of(form: JobForm, accounts: frozenset[UUID] | None) -> UUID:
    """The account a new job goes to: the only one the caller has, or the one chosen."""
    raw = form.get("account_id").strip()
    if not raw and accounts is not None and len(accounts) == 1:
        return next(iter(accounts))
    try:
        return UUID(raw)
    except ValueError:
        raise FormError("choose an account (a UUID)", "account_id") from None


def local_input(moment: datetime | None, timezone: str) -> str:
    """A time as its datetime-local box shows it: wall time in the job's zone, to the second."""
    if moment is None:
        return ""
    return to_wall(moment, zone(timezone)).strftime("%Y-%m-%dT%H:%M:%S")


def _calendar_box(schedule: CalendarSchedule) -> str:
    return schedule.rrule if schedule.rrule is not None else json.dumps(msgspec.to_builtins(schedule.rule))


def form_of(job: JobView, webhook: WebhookRecord | None, account_id: UUID) -> JobForm:
    """The form filled in from a job, for editing."""
    schedule = job.schedule
    values = {
        "name": job.name,
        "description": job.description or "",
        "account_id": str(account_id),
        "job_type": job.job_type,
        "cron_expression": schedule.expression if isinstance(schedule, CronSchedule) else "",
        "interval_seconds": str(whole(schedule.every_seconds)) if isinstance(schedule, IntervalSchedule) else "",
        "start_time": local_input(schedule.anchor if isinstance(schedule, IntervalSchedule) else None, job.timezone),
        "scheduled_time": local_input(schedule.at if isinstance(schedule, DateSchedule) else None, job.timezone),
        "calendar_rule": _calendar_box(schedule) if isinstance(schedule, CalendarSchedule) else "",
        "timezone": job.timezone,
        "is_active": "on" if job.is_active else "",
        "action": "task" if job.task_name else "webhook",
        "task_name": job.task_name or "",
        "task_args": json.dumps(job.task_args) if job.task_args else "",
        "task_kwargs": json.dumps(job.task_kwargs) if job.task_kwargs else "",
        "max_retries": str(job.max_retries),
        "retry_delay": str(job.retry_delay),
        "retry_backoff": "on" if job.retry_backoff else "",
        "priority": str(job.priority),
        "misfire_policy": job.misfire_policy.policy,
        "misfire_grace_seconds": ""
        if job.misfire_policy.grace_seconds is None
        else f"{job.misfire_policy.grace_seconds:g}",
        "overlap_policy": job.overlap_policy,
        "jitter_seconds": f"{job.jitter_seconds:g}",
        "exclusions": exclusions_box(job.exclusions),
        "callback_url": job.callback_url or "",
        "failure_callback_url": job.failure_callback_url or "",
        **flow_boxes(job.flow_control),
        "tags": ", ".join(job.tags),
    }
    if webhook is not None:
        values |= {
            "url": webhook.url,
            "method": webhook.method,
            "headers": "\n".join(f"{k}: {v}" for k, v in webhook.headers.items()),
            "body_template": webhook.body_template or "",
            "content_type": webhook.content_type,
        }
    return JobForm(values=values)


def flow_boxes(flow: FlowControl | None) -> dict[str, str]:
    """A job's flow control as the form's four boxes show it (empty ones for none)."""
    if flow is None:
        return {"flow_key": "", "flow_parallelism": "", "flow_rate": "", "flow_period_seconds": ""}
    return {
        "flow_key": flow.key,
        "flow_parallelism": "" if flow.parallelism is None else str(flow.parallelism),
        "flow_rate": "" if flow.rate is None else str(flow.rate),
        "flow_period_seconds": f"{flow.period_seconds:g}",
    }


def exclusions_box(exclusions: Exclusions | None) -> str:
    """A job's exclusions as the form's box shows them: one date or rule a line, dates first."""
    if exclusions is None:
        return ""
    return "\n".join([*(d.isoformat() for d in exclusions.dates), *exclusions.rules])


def new_form() -> JobForm:
    return JobForm(
        values={
            "job_type": "cron",
            "timezone": "UTC",
            "is_active": "on",
            "action": "webhook",
            "method": "POST",
            "content_type": "application/json",
            "max_retries": "3",
            "retry_delay": "60",
            "retry_backoff": "on",
            "priority": "5",
            "misfire_policy": "fire_all",
            "overlap_policy": "allow",
            "jitter_seconds": "0",
        }
    )
