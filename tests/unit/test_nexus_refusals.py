"""The NEXUS mapping refuses a create body whose schedule fields do not fit its type, and times and zones a job
may not hold; the error names the field at fault (neutrally; NEXUS names it as its document does)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from services.api.core.api_errors import ValidationFailedError
from services.api.nexus.errors import nexus_field
from shared.contracts.schedules import DateSchedule
from tests.unit.test_nexus_mapping import create, new

pytestmark = pytest.mark.unit


def refused(field: str) -> pytest.RaisesExc[ValidationFailedError]:
    """A refusal NEXUS shows on `field`."""
    return pytest.raises(ValidationFailedError, check=lambda e: nexus_field(e.field, e.schedule_kind) == field)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"job_type": "cron"}, "cron_expression"),
        ({"job_type": "interval"}, "interval_seconds"),
        ({"job_type": "date"}, "scheduled_time"),
        ({"job_type": "calendar"}, "calendar_rule"),
    ],
)
def test_the_field_of_the_jobs_type_is_required(fields: dict[str, Any], field: str) -> None:
    with refused(field) as caught:
        new(create(**fields))
    assert caught.value.missing


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron_expression": "* * * * *", "interval_seconds": 5}, "interval_seconds"),
        ({"cron_expression": "* * * * *", "scheduled_time": "2027-01-01T00:00:00Z"}, "scheduled_time"),
        ({"cron_expression": "* * * * *", "calendar_rule": "FREQ=DAILY"}, "calendar_rule"),
        ({"job_type": "interval", "interval_seconds": 5, "cron_expression": "* * * * *"}, "cron_expression"),
        ({"cron_expression": "* * * * *", "start_time": "2027-01-01T00:00:00Z"}, "start_time"),
        (
            {"job_type": "date", "scheduled_time": "2027-01-01T00:00:00Z", "start_time": "2027-01-01T00:00:00Z"},
            "start_time",
        ),
    ],
)
def test_a_field_of_another_schedule_kind_is_refused(fields: dict[str, Any], field: str) -> None:
    with refused(field) as caught:
        new(create(**fields))
    assert not caught.value.missing


@pytest.mark.parametrize(
    "fields",
    [
        {"task_args": [1]},
        {"task_kwargs": {"a": 1}},
    ],
)
def test_task_arguments_need_a_task_name(fields: dict[str, Any]) -> None:
    with refused("task_name"):
        new(create(cron_expression="* * * * *", **fields))


def test_an_unknown_time_zone_is_refused() -> None:
    with refused("timezone"):
        new(create(cron_expression="* * * * *", timezone="Mars/Olympus"))


def test_a_calendar_rule_with_an_unknown_field_is_refused() -> None:
    with refused("calendar_rule"):
        new(create(job_type="calendar", calendar_rule={"weekday": [1]}))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"job_type": "date", "scheduled_time": "1969-12-31T23:59:59Z"}, "scheduled_time"),
        ({"job_type": "date", "scheduled_time": "9001-01-01T00:00:00Z"}, "scheduled_time"),
        ({"job_type": "date", "scheduled_time": "0001-01-01T00:00:00", "timezone": "Asia/Tokyo"}, "scheduled_time"),
        ({"job_type": "interval", "interval_seconds": 5, "start_time": "1900-01-01T00:00:00Z"}, "start_time"),
    ],
)
def test_a_time_outside_the_years_a_job_may_hold_is_refused(fields: dict[str, Any], field: str) -> None:
    with refused(field):
        new(create(**fields))


def test_the_edges_of_the_years_a_job_may_hold_are_accepted() -> None:
    for at in ("1970-01-01T00:00:00Z", "9000-12-31T23:59:59Z"):
        assert new(create(job_type="date", scheduled_time=at)).schedule == DateSchedule(at=datetime.fromisoformat(at))
