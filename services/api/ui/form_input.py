"""The job form read into what the core takes: the job input (services/api/core/job_input.py), with strings where
it takes numbers converted leniently and each value out of bounds an error on its box, and the webhook the job
calls."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from services.api.core.job_commands import WebhookDraft
from services.api.core.job_input import JobInput
from services.api.http.request_bodies import BodyTooDeepError, check_depth
from services.api.ui.job_form import METHODS, FormError, JobForm, local_input
from services.api.ui.job_view import JobView
from shared.contracts.schedules import DateSchedule, IntervalSchedule

_LOCAL_MINUTES = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")
# A line of the exclusions box that is a date rather than a cron rule.
_DATE_LINE = re.compile(r"\d{4}-\d{2}-\d{2}")


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
    """The job input the form describes, by the input's field names (strings where the input takes numbers:
    converted leniently)."""
    form.check_choices()
    body: dict[str, Any] = {
        "name": form.get("name").strip(),
        "description": _optional(form, "description"),
        "kind": form.kind,
        **_schedule_fields(form),
        "timezone": form.get("timezone").strip() or "UTC",
        "enabled": form.get("is_active") == "on",
        "max_retries": form.get("max_retries") or "3",
        "retry_delay": form.get("retry_delay") or "60",
        "retry_backoff": form.get("retry_backoff") == "on",
        "priority": form.get("priority") or "5",
        "misfire": {
            "policy": form.get("misfire_policy") or "fire_all",
            "grace_seconds": _optional(form, "misfire_grace_seconds"),
        },
        "overlap": form.get("overlap_policy") or "allow",
        "jitter_seconds": form.get("jitter_seconds") or "0",
        "exclusions": _exclusions(form),
        "callback_url": _optional(form, "callback_url"),
        "failure_callback_url": _optional(form, "failure_callback_url"),
        "flow_control": _flow_control(form),
        "tags": [t.strip() for t in form.get("tags").split(",") if t.strip()],
    }
    if form.action == "task":
        body["task_name"] = _optional(form, "task_name")
        body["task_args"] = _json(form, "task_args", [])
        body["task_kwargs"] = _json(form, "task_kwargs", {})
    return body


def _exclusions(form: JobForm) -> dict[str, list[str]] | None:
    """The exclusions box: one a line, a date (YYYY-MM-DD) or a cron rule; None when it is empty."""
    found: dict[str, list[str]] = {"dates": [], "rules": []}
    for line in filter(None, (line.strip() for line in form.get("exclusions").splitlines())):
        found["dates" if _DATE_LINE.fullmatch(line) else "rules"].append(line)
    return found if found["dates"] or found["rules"] else None


def _flow_control(form: JobForm) -> dict[str, str | None] | None:
    """The flow-control boxes: None when no key is given (limits without a key are refused)."""
    key = _optional(form, "flow_key")
    limits = {name: _optional(form, f"flow_{name}") for name in ("parallelism", "rate", "period_seconds")}
    if key is None:
        if limits["parallelism"] or limits["rate"]:
            raise FormError("flow control needs a key: the name the limits are shared under", "flow_key")
        return None
    return {"key": key, **{name: value for name, value in limits.items() if value is not None}}


def _converted(body: dict[str, Any]) -> JobInput:
    try:
        return msgspec.convert(body, JobInput, strict=False)
    except msgspec.ValidationError as exc:
        raise FormError.of(exc) from None


def create_input(form: JobForm) -> JobInput:
    """The new job the form describes."""
    body = _body(form)
    if form.action == "task" and body.get("task_name") is None:
        raise FormError("a task job needs a task name", "task_name")
    return _converted(body)


def update_input(form: JobForm, current: JobView) -> JobInput:
    """Every field of the form; a task job that becomes a webhook job loses its task. A time box left as it was
    shown is not sent: the box holds wall time to the second, and sending it back could move an anchor (its
    fraction of a second, or the second of two equal wall times when clocks go back)."""
    body = _body(form)
    if form.kind == current.job_type and form.get("timezone").strip() == current.timezone:
        schedule, timezone = current.schedule, current.timezone
        shown = {
            "start_time": local_input(schedule.anchor if isinstance(schedule, IntervalSchedule) else None, timezone),
            "scheduled_time": local_input(schedule.at if isinstance(schedule, DateSchedule) else None, timezone),
        }
        for name, value in shown.items():
            if name in body and body[name] == value:  # both to the second (a browser drops ":00" seconds)
                del body[name]
    if form.action == "webhook" and current.task_name is not None:
        body |= {"task_name": None, "task_args": [], "task_kwargs": {}}
    if form.action == "task" and body.get("task_name") is None:
        raise FormError("a task job needs a task name", "task_name")
    return _converted(body)


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


def webhook_input(form: JobForm) -> WebhookDraft | None:
    """The webhook the form describes, when the job calls one (its URL is required then)."""
    if form.action != "webhook":
        return None
    url = form.get("url").strip()
    if not url:
        raise FormError("a webhook job needs a URL", "url")
    method = form.get("method") or "POST"
    if method not in METHODS:
        raise FormError(f"method must be one of {', '.join(METHODS)}", "method")
    return WebhookDraft(
        url=url,
        method=method,
        headers=_headers(form.get("headers")),
        body_template=form.get("body_template") or None,
        content_type=form.get("content_type").strip() or "application/json",
    )
