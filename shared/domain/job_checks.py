"""Checks on what a job may hold that a schema cannot express: schedules, time zones, task names, webhook targets,
headers and bodies, times, and rules over the whole job (its window, that it fires, its size, that it runs
something). Each raises ValidationFailed; the `checked_*` ones return the value as it is kept."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from shared.contracts.codec import encode
from shared.contracts.jobs import FlowControl, JobCreated, JobEvent, JobState, JobUpdated
from shared.contracts.schedules import AfterSchedule, CronSchedule, Exclusions, Schedule, kind_of
from shared.contracts.task_names import check_task_name
from shared.delivery.templates import TemplateError, check_template
from shared.domain.errors import InvalidCron, ValidationFailed
from shared.schedule.errors import InvalidCronExpressionError, InvalidScheduleError, InvalidTimezoneError
from shared.schedule.exclusions import check_exclusions
from shared.schedule.firing import next_fire, passed_date
from shared.schedule.occurrences import validate_cron, validate_schedule
from shared.schedule.wallclock import zone

# Every job event carries the whole job, webhooks included: keep it well under NATS's 1 MiB message limit.
MAX_EVENT_BYTES = 512 * 1024
MAX_WEBHOOKS_PER_JOB = 20
# The years a time a job holds may fall in: every such time can be shown in any zone.
FIRST_YEAR, LAST_YEAR = 1970, 9000
YEARS = f"years {FIRST_YEAR} to {LAST_YEAR}"
# RFC 9110 token characters: what a header name (and a method) may be made of.
HTTP_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# A control character other than tab, which RFC 9110 field values may not hold.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Set by the dispatcher on every request; a webhook may not override them.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)


def in_year_range(moment: datetime) -> bool:
    """Whether a time falls in the years a job's times may take (FIRST_YEAR to LAST_YEAR)."""
    return FIRST_YEAR <= moment.year <= LAST_YEAR


def checked_utc(moment: datetime | None) -> datetime | None:
    """A time given with its UTC offset, within the years a job's times may take, in UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValidationFailed("a time needs its UTC offset (for example 2027-01-01T09:00:00Z)")
    if not in_year_range(moment):
        raise ValidationFailed(f"{moment.isoformat()} is out of range: {YEARS}")
    return moment.astimezone(UTC)


def checked_timezone(name: str) -> str:
    """An IANA time zone name."""
    try:
        zone(name)
    except InvalidTimezoneError as exc:
        raise ValidationFailed(str(exc), "timezone") from exc
    return name


def checked_cron(expression: str) -> CronSchedule:
    """A cron schedule that parses, its expression's whitespace normalised."""
    expression = " ".join(expression.split())
    try:
        validate_cron(expression)
    except InvalidCronExpressionError as exc:
        raise InvalidCron(str(exc)) from exc
    return CronSchedule(expression=expression)


def checked_schedule(schedule: Schedule, timezone: str) -> Schedule:
    """A schedule that parses in its time zone; cron expressions normalised."""
    if isinstance(schedule, CronSchedule):
        return checked_cron(schedule.expression)
    try:
        validate_schedule(schedule, timezone)
    except InvalidScheduleError as exc:
        raise ValidationFailed(str(exc), "schedule", schedule_kind=kind_of(schedule)) from exc
    return schedule


def checked_exclusions(exclusions: Exclusions | None) -> Exclusions | None:
    """Exclusions within their limits with rules that parse, dates in order without repeats; None for none."""
    if exclusions is None or not (exclusions.dates or exclusions.rules):
        return None
    try:
        check_exclusions(exclusions)
    except InvalidScheduleError as exc:
        raise ValidationFailed(str(exc), "exclusions") from exc
    return Exclusions(dates=tuple(sorted(set(exclusions.dates))), rules=tuple(dict.fromkeys(exclusions.rules)))


def checked_task_name(name: str) -> str:
    """Task names become subject tokens (see shared.contracts.task_names)."""
    try:
        return check_task_name(name)
    except ValueError as exc:
        raise ValidationFailed(str(exc), "task") from exc


def check_timeout(timeout: float | None, limit: float | None) -> None:
    """A per-attempt timeout within the operator's limit (None: no limit)."""
    if timeout is not None and limit is not None and timeout > limit:
        raise ValidationFailed(
            f"timeout_seconds may be at most {limit:g} (SCHEDULER_MAX_DELIVERY_TIMEOUT_SECONDS)", "timeout_seconds"
        )


def checked_url(url: str) -> str:
    """An absolute http(s) URL with a host, without whitespace or control characters."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValidationFailed("url must not contain whitespace or control characters", "url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"url is not a valid URL: {exc}", "url") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationFailed(f"url must use http or https, not {parts.scheme or 'no scheme'!r}", "url")
    if not parts.hostname:
        raise ValidationFailed("url must name a host", "url")
    try:
        parts.hostname.encode("idna")
    except UnicodeError as exc:
        raise ValidationFailed(f"url host {parts.hostname!r} is not a valid host name", "url") from exc
    if port == 0:
        raise ValidationFailed("url port must be between 1 and 65535", "url")
    return url


# A flow-control key: the account's own name for a destination (a token of the flow bucket's keys).
FLOW_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_FLOW_PARALLELISM, MAX_FLOW_RATE, MAX_FLOW_PERIOD_SECONDS = 1000, 1_000_000, 86400.0


def checked_flow_control(flow: FlowControl | None) -> FlowControl | None:
    """Flow control with a usable key and at least one limit, each within its bounds."""
    if flow is None:
        return None
    if not FLOW_KEY.fullmatch(flow.key):
        raise ValidationFailed("flow_control: key is 1-64 letters, digits, '-' or '_'", "flow_control")
    if flow.parallelism is None and flow.rate is None:
        raise ValidationFailed("flow_control: give a parallelism, a rate or both", "flow_control")
    if flow.parallelism is not None and not 1 <= flow.parallelism <= MAX_FLOW_PARALLELISM:
        raise ValidationFailed(f"flow_control: parallelism is 1-{MAX_FLOW_PARALLELISM}", "flow_control")
    if flow.rate is not None and not 1 <= flow.rate <= MAX_FLOW_RATE:
        raise ValidationFailed(f"flow_control: rate is 1-{MAX_FLOW_RATE}", "flow_control")
    if not 1 <= flow.period_seconds <= MAX_FLOW_PERIOD_SECONDS:
        raise ValidationFailed(f"flow_control: period_seconds is 1-{MAX_FLOW_PERIOD_SECONDS:g}", "flow_control")
    return flow


CallbackField = Literal["callback_url", "failure_callback_url"]


def checked_callback_url(url: str | None, field: CallbackField) -> str | None:
    """A callback URL, checked as a webhook's is (the egress policy is the api's to check), or None for none."""
    if url is None:
        return None
    try:
        return checked_url(url)
    except ValidationFailed as exc:
        raise ValidationFailed(f"{field}: {exc.detail}", field) from None


def checked_headers(headers: dict[str, str]) -> dict[str, str]:
    """Valid header names, values without control characters (tab allowed), nothing the dispatcher sets itself."""
    for name, value in headers.items():
        if not HTTP_TOKEN.fullmatch(name):
            raise ValidationFailed(f"header name {name!r} is not a valid HTTP header name", "headers")
        if name.lower() in _RESERVED_HEADERS:
            raise ValidationFailed(f"header {name!r} is set by the scheduler, not by a webhook", "headers")
        if control_character_in(value):
            raise ValidationFailed(f"header {name!r} has a control character in its value", "headers")
    return headers


def control_character_in(value: str) -> bool:
    """Whether a header value holds a control character other than tab (which RFC 9110 field values may not)."""
    return _CONTROL_CHARACTER.search(value) is not None  # the dispatcher asks for every header it sends


def check_body(template: str | None, content_type: str) -> None:
    """A body template that renders for the content type it is sent as."""
    if template is not None:
        try:
            check_template(template, content_type)
        except TemplateError as exc:
            raise ValidationFailed(str(exc), "body_template") from None


def check_window(state: JobState) -> None:
    """A firing window that is not empty."""
    if state.start_at is not None and state.end_at is not None and state.end_at <= state.start_at:
        raise ValidationFailed("end_at must be after start_at", "end_at")


def check_fires(event: JobEvent) -> None:
    """An enabled job must fire at least once more; a schedule entirely in the past is a mistake. A chain's link
    fires when its upstream job's occurrences end, never at a time of its own."""
    if isinstance(event.job.schedule, AfterSchedule):
        if event.job.schedule.job_id == event.job_id:
            raise ValidationFailed("after: a job cannot run after itself", "schedule", schedule_kind="after")
        return
    if event.job.enabled and event.next_run_at is None:
        if event.job.end_at is not None and event.job.end_at <= event.occurred_at:
            raise ValidationFailed("end_at is in the past: the job would never fire", "end_at")
        sets_schedule = isinstance(event, JobCreated) or (isinstance(event, JobUpdated) and "schedule" in event.changed)
        if sets_schedule and passed_date(event.job, event.occurred_at) is not None:
            return  # a date already past: the ticker puts its occurrence through the job's misfire policy
        if event.job.exclusions is not None:
            unexcluded = msgspec.structs.replace(event.job, exclusions=None)
            if next_fire(unexcluded, event.occurred_at) is not None:
                raise ValidationFailed("the exclusions remove every occurrence: the job would never fire", "exclusions")
        kind = kind_of(event.job.schedule)
        detail = "scheduled_time is in the past" if kind == "date" else "the schedule never fires again"
        raise ValidationFailed(detail, "schedule", schedule_kind=kind)


def check_size(event: JobEvent) -> None:
    """An event (the whole job) that fits in a NATS message with room to spare."""
    size = len(encode(event))
    if size > MAX_EVENT_BYTES:
        raise ValidationFailed(
            f"the job would take {size} bytes, over the {MAX_EVENT_BYTES} limit: use fewer or smaller webhooks"
        )


def check_runnable(state: JobState) -> None:
    """For surfaces without webhooks of their own (NEXUS): an active job must have a task or a webhook to run."""
    if state.enabled and state.task is None and not state.webhooks:
        raise ValidationFailed(
            "an active job needs a task_name (or a webhook, added on /webhooks): with neither, every run fails",
            "task",
            missing=True,
        )
