"""The domain's checks (each raises ValidationFailed on a neutral field), the one year range, and how each
surface names a domain error's field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.api.core.api_errors import InvalidCronError, JobNotFoundError, ValidationFailedError, api_error
from services.api.nexus.errors import nexus_field
from services.api.ui.job_form import box_of
from shared.contracts.schedules import CalendarSchedule, CronSchedule, IntervalSchedule
from shared.domain import errors
from shared.domain.job_checks import (
    YEARS,
    check_body,
    check_timeout,
    checked_cron,
    checked_headers,
    checked_schedule,
    checked_task_name,
    checked_timezone,
    checked_url,
    checked_utc,
    in_year_range,
)

pytestmark = pytest.mark.unit


def test_the_year_range() -> None:
    assert YEARS == "years 1970 to 9000"
    assert in_year_range(datetime(1970, 1, 1, tzinfo=UTC)) and in_year_range(datetime(9000, 12, 31))
    assert not in_year_range(datetime(1969, 12, 31, 23, 59)) and not in_year_range(datetime(9001, 1, 1))
    assert checked_utc(None) is None
    assert checked_utc(datetime(2027, 1, 1, 9, tzinfo=timezone(timedelta(hours=1)))) == datetime(
        2027, 1, 1, 8, tzinfo=UTC
    )
    with pytest.raises(errors.ValidationFailed, match="needs its UTC offset"):
        checked_utc(datetime(2027, 1, 1))
    with pytest.raises(errors.ValidationFailed) as error:
        checked_utc(datetime(1969, 1, 1, tzinfo=UTC))
    assert (error.value.detail, error.value.field) == (
        "1969-01-01T00:00:00+00:00 is out of range: years 1970 to 9000",
        None,
    )


def test_schedules_time_zones_and_task_names() -> None:
    assert checked_cron(" */5  * * * * ") == CronSchedule(expression="*/5 * * * *")
    with pytest.raises(errors.InvalidCron) as cron:
        checked_cron("61 * * * *")
    assert (cron.value.code, cron.value.field, cron.value.schedule_kind) == (
        "INVALID_CRON_EXPRESSION",
        "schedule",
        "cron",
    )
    assert checked_schedule(IntervalSchedule(every_seconds=5, anchor=datetime(2026, 1, 1, tzinfo=UTC)), "UTC")
    with pytest.raises(errors.ValidationFailed) as bad:
        checked_schedule(CalendarSchedule(rrule="FREQ=SOMETIMES", anchor=datetime(2026, 1, 1, tzinfo=UTC)), "UTC")
    assert (bad.value.field, bad.value.schedule_kind) == ("schedule", "calendar")
    assert checked_timezone("Europe/Paris") == "Europe/Paris"
    with pytest.raises(errors.ValidationFailed) as zone:
        checked_timezone("Europe/Atlantis")
    assert zone.value.field == "timezone"
    assert checked_task_name("tasks.report") == "tasks.report"
    with pytest.raises(errors.ValidationFailed) as task:
        checked_task_name("tasks..report")
    assert task.value.field == "task"
    check_timeout(30, None)
    check_timeout(30, 30)
    with pytest.raises(errors.ValidationFailed) as slow:
        check_timeout(30.5, 30)
    assert slow.value.detail == "timeout_seconds may be at most 30 (SCHEDULER_MAX_DELIVERY_TIMEOUT_SECONDS)"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/\n", "whitespace or control"),
        ("ftp://example.com/", "http or https, not 'ftp'"),
        ("example.com", "http or https, not 'no scheme'"),
        ("https:///path", "must name a host"),
        ("http://example.com:0/", "between 1 and 65535"),
        ("http://example.com:99999/", "not a valid URL"),
    ],
)
def test_webhook_urls(url: str, message: str) -> None:
    with pytest.raises(errors.ValidationFailed, match=message) as error:
        checked_url(url)
    assert error.value.field == "url"


def test_headers_and_bodies() -> None:
    assert checked_url("https://example.com:8443/a?b=c") == "https://example.com:8443/a?b=c"
    assert checked_headers({"X-Tab": "a\tb"}) == {"X-Tab": "a\tb"}
    for headers in (
        {"X Bad": "a"},
        {"X-End\n": "a"},
        {"webhook-id": "forged"},
        {"Host": "internal"},
        {"X-A": "a\x7fb"},
    ):
        with pytest.raises(errors.ValidationFailed) as error:
            checked_headers(headers)
        assert error.value.field == "headers"
    check_body(None, "application/json")
    check_body('{"job": "{{job_id}}"}', "application/json")
    with pytest.raises(errors.ValidationFailed) as body:
        check_body("{{#unclosed}}", "application/json")
    assert body.value.field == "body_template"


@pytest.mark.parametrize(
    ("field", "kind", "nexus", "form"),
    [
        ("schedule", "cron", "cron_expression", "cron_expression"),
        ("schedule", "interval", "interval_seconds", "interval_seconds"),
        ("schedule", "date", "scheduled_time", "scheduled_time"),
        ("schedule", "calendar", "calendar_rule", "calendar_rule"),
        ("anchor", None, "start_time", "start_time"),
        ("task", None, "task_name", "task_name"),
        ("arguments", None, "task_args", "task_args"),
        ("timezone", None, "timezone", "timezone"),
        ("end_at", None, "end_at", "end_at"),
        ("url", None, "url", "url"),
        # The job input's fields the form names otherwise (the dashboard reads its form into that input).
        ("misfire", None, "misfire", "misfire_policy"),
        ("overlap", None, "overlap", "overlap_policy"),
        (None, None, None, None),
    ],
)
def test_each_surface_names_the_field(field: str | None, kind: str | None, nexus: str, form: str) -> None:
    # The primary API shows no field: its error body is {detail, error_code, status_code}.
    assert (nexus_field(field, kind), box_of(field, kind)) == (nexus, form)


def test_domain_errors_become_the_apis_with_the_same_code_detail_and_neutral_field() -> None:
    cron = api_error(errors.InvalidCron("bad minute"))
    assert isinstance(cron, InvalidCronError)
    assert (cron.code, cron.detail, cron.field, cron.schedule_kind) == (
        "INVALID_CRON_EXPRESSION",
        "bad minute",
        "schedule",
        "cron",
    )
    missing = api_error(errors.ValidationFailed("nothing to run", "task", missing=True))
    assert isinstance(missing, ValidationFailedError)
    assert (missing.field, missing.missing, missing.location) == ("task", True, "body")
    gone = api_error(errors.JobNotFound("job x not found"))
    assert isinstance(gone, JobNotFoundError) and gone.detail == "job x not found"
    assert api_error(errors.WebhookNotFound("w")).code == "WEBHOOK_NOT_FOUND"
    assert api_error(errors.Conflict("c")).code == "CONFLICT"
