"""The job form: one form for every kind of job, read into the NEXUS API's create and update bodies so the
dashboard validates exactly as that API does and shows the same messages, next to the field at fault."""

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
from services.api.core.fields import HttpMethod
from services.api.core.webhook_queries import WebhookRecord
from services.api.http.request_bodies import BodyTooDeepError, check_depth
from services.api.nexus.schemas import JobKind, NexusJob, NexusJobCreate, NexusJobUpdate
from shared.schedule.wallclock import to_wall, zone

KINDS: tuple[str, ...] = get_args(JobKind)
METHODS: tuple[str, ...] = ("POST", *(m for m in get_args(HttpMethod) if m != "POST"))
_AT_FIELD = re.compile(r"at `\$\.([a-z_]+)")
_LOCAL_MINUTES = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")


class FormError(Exception):
    """A form value that cannot be used: the message and the field it belongs to (None: the whole form)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @classmethod
    def of(cls, exc: ValidationFailedError | msgspec.ValidationError) -> FormError:
        """The API's own error, placed on its field."""
        if isinstance(exc, ValidationFailedError):
            return cls(exc.detail, exc.field)
        found = _AT_FIELD.search(str(exc))
        return cls(str(exc), found[1] if found else None)


@dataclass(frozen=True, slots=True)
class WebhookInput:
    url: str
    method: str
    headers: dict[str, str]
    body_template: str | None
    content_type: str


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


def _optional(form: JobForm, name: str) -> str | None:
    value = form.get(name).strip()
    return value or None


def _json(form: JobForm, name: str, default: Any) -> Any:
    text = form.get(name).strip()
    if not text:
        return default
    try:
        check_depth(text.encode())
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormError(f"{name} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", name) from None
    except BodyTooDeepError as exc:
        raise FormError(f"{name} is {exc}", name) from None


def _local_time(form: JobForm, name: str) -> str | None:
    """A datetime-local value (minutes only) as an ISO time; without an offset it is wall time in the job's zone."""
    value = _optional(form, name)
    if value is not None and _LOCAL_MINUTES.match(value):
        return value + ":00"
    return value


def _schedule_fields(form: JobForm) -> dict[str, Any]:
    kind = form.kind
    if kind == "cron":
        return {"cron_expression": _optional(form, "cron_expression")}
    if kind == "interval":
        return {"interval_seconds": _optional(form, "interval_seconds"), "start_time": _local_time(form, "start_time")}
    if kind == "date":
        return {"scheduled_time": _local_time(form, "scheduled_time")}
    rule = form.get("calendar_rule").strip()
    return {"calendar_rule": (_json(form, "calendar_rule", None) if rule.startswith("{") else rule) or None}


def _body(form: JobForm) -> dict[str, Any]:
    """The NEXUS body the form describes (strings where the API takes numbers: converted leniently)."""
    form.check_choices()
    body: dict[str, Any] = {
        "name": form.get("name").strip(),
        "description": _optional(form, "description"),
        "job_type": form.kind,
        **_schedule_fields(form),
        "timezone": form.get("timezone").strip() or "UTC",
        "is_active": form.get("is_active") == "on",
        "max_retries": form.get("max_retries") or "3",
        "retry_delay": form.get("retry_delay") or "60",
        "retry_backoff": form.get("retry_backoff") == "on",
        "priority": form.get("priority") or "5",
        "misfire_policy": {
            "policy": form.get("misfire_policy") or "fire_all",
            "grace_seconds": _optional(form, "misfire_grace_seconds"),
        },
        "overlap_policy": form.get("overlap_policy") or "allow",
        "jitter_seconds": form.get("jitter_seconds") or "0",
        "tags": [t.strip() for t in form.get("tags").split(",") if t.strip()],
    }
    if form.action == "task":
        body["task_name"] = _optional(form, "task_name")
        body["task_args"] = _json(form, "task_args", [])
        body["task_kwargs"] = _json(form, "task_kwargs", {})
    return body


def _converted(body: dict[str, Any], into: type[msgspec.Struct]) -> Any:
    try:
        return msgspec.convert(body, into, strict=False)
    except msgspec.ValidationError as exc:
        raise FormError.of(exc) from None


def create_body(form: JobForm) -> NexusJobCreate:
    body = _body(form)
    if form.action == "task" and body.get("task_name") is None:
        raise FormError("a task job needs a task name", "task_name")
    created: NexusJobCreate = _converted(body, NexusJobCreate)
    return created


def update_body(form: JobForm, current: NexusJob) -> NexusJobUpdate:
    """Every field of the form; a task job that becomes a webhook job loses its task. A time box left as it was
    shown is not sent: the box holds wall time to the second, and sending it back could move an anchor (its
    fraction of a second, or the second of two equal wall times when clocks go back)."""
    body = _body(form)
    if form.kind == current.job_type and form.get("timezone").strip() == current.timezone:
        shown = {
            "start_time": _local_input(current.interval_anchor, current.timezone),
            "scheduled_time": _local_input(current.scheduled_time, current.timezone),
        }
        for name, value in shown.items():
            if name in body and body[name] == value:  # both to the second (a browser drops ":00" seconds)
                del body[name]
    if form.action == "webhook" and current.task_name is not None:
        body |= {"task_name": None, "task_args": [], "task_kwargs": {}}
    if form.action == "task" and body.get("task_name") is None:
        raise FormError("a task job needs a task name", "task_name")
    updated: NexusJobUpdate = _converted(body, NexusJobUpdate)
    return updated


def _headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise FormError(f"headers line {number}: write 'Name: value'", "headers")
        headers[name.strip()] = value.strip()
    return headers


def webhook_input(form: JobForm) -> WebhookInput | None:
    """The webhook the form describes, when the job calls one (its URL is required then)."""
    if form.action != "webhook":
        return None
    url = form.get("url").strip()
    if not url:
        raise FormError("a webhook job needs a URL", "url")
    method = form.get("method") or "POST"
    if method not in METHODS:
        raise FormError(f"method must be one of {', '.join(METHODS)}", "method")
    return WebhookInput(
        url=url,
        method=method,
        headers=_headers(form.get("headers")),
        body_template=form.get("body_template") or None,
        content_type=form.get("content_type").strip() or "application/json",
    )


def account_of(form: JobForm, accounts: frozenset[UUID] | None) -> UUID:
    """The account a new job goes to: the only one the caller has, or the one chosen."""
    raw = form.get("account_id").strip()
    if not raw and accounts is not None and len(accounts) == 1:
        return next(iter(accounts))
    try:
        return UUID(raw)
    except ValueError:
        raise FormError("choose an account (a UUID)", "account_id") from None


def _local_input(moment: datetime | None, timezone: str) -> str:
    if moment is None:
        return ""
    return to_wall(moment, zone(timezone)).strftime("%Y-%m-%dT%H:%M:%S")


def form_of(job: NexusJob, webhook: WebhookRecord | None, account_id: UUID) -> JobForm:
    """The form filled in from a job, for editing."""
    calendar = job.calendar_rule
    values = {
        "name": job.name,
        "description": job.description or "",
        "account_id": str(account_id),
        "job_type": job.job_type,
        "cron_expression": job.cron_expression or "",
        "interval_seconds": "" if job.interval_seconds is None else str(job.interval_seconds),
        "start_time": _local_input(job.interval_anchor, job.timezone),
        "scheduled_time": _local_input(job.scheduled_time, job.timezone),
        "calendar_rule": json.dumps(calendar) if isinstance(calendar, dict) else (calendar or ""),
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
