"""The dashboard's job form: read into the NEXUS API's bodies, with each error on the field at fault."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from services.api.core.api_errors import ValidationFailedError
from services.api.nexus.mapping import changes_from, draft_from
from services.api.nexus.schemas import NexusJob
from services.api.ui.job_form import (
    FormError,
    JobForm,
    account_of,
    create_body,
    form_of,
    new_form,
    update_body,
    webhook_input,
)
from shared.contracts.schedules import IntervalSchedule

pytestmark = pytest.mark.unit


def form(**values: str) -> JobForm:
    return JobForm(values={**new_form().values, "name": "n", **values})


def test_a_cron_webhook_form_becomes_the_api_body() -> None:
    body = create_body(form(cron_expression="0 9 * * 1-5", timezone="Europe/Paris", tags="a, b,,a ", max_retries="0"))
    assert (body.job_type, body.cron_expression, body.timezone) == ("cron", "0 9 * * 1-5", "Europe/Paris")
    assert (body.tags, body.max_retries, body.is_active, body.task_name) == (["a", "b", "a"], 0, True, None)


def test_a_date_from_a_datetime_local_box_is_wall_time_in_the_jobs_zone() -> None:
    body = create_body(form(job_type="date", scheduled_time="2030-03-31T09:15", timezone="Europe/Paris"))
    draft = draft_from(body, datetime.now(UTC))
    assert draft.schedule.at == datetime(2030, 3, 31, 7, 15, tzinfo=UTC)  # type: ignore[union-attr]


def test_a_calendar_rule_is_json_or_an_rrule() -> None:
    assert create_body(form(job_type="calendar", calendar_rule='{"weekdays": [1]}')).calendar_rule == {"weekdays": [1]}
    assert create_body(form(job_type="calendar", calendar_rule="FREQ=DAILY")).calendar_rule == "FREQ=DAILY"


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"max_retries": "many"}, "max_retries", "Expected `int`"),
        ({"priority": "11"}, "priority", "<= 10"),
        ({"job_type": "interval", "interval_seconds": "-5"}, "interval_seconds", "> 0"),
        ({"job_type": "calendar", "calendar_rule": "{oops"}, "calendar_rule", "not valid JSON"),
        ({"action": "task", "task_name": "t", "task_args": "{}"}, "task_args", "Expected `array`"),
        ({"action": "task"}, "task_name", "needs a task name"),
        ({"name": ""}, "name", "length >= 1"),
    ],
)
def test_bad_values_are_errors_on_their_field(values: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(FormError) as raised:
        create_body(form(**values))
    assert raised.value.field == field
    assert message in raised.value.message


def test_webhook_headers_are_name_value_lines() -> None:
    hook = webhook_input(form(url="https://example.com/h", headers="X-A: 1\n\nAuthorization: Bearer a:b\n"))
    assert hook is not None and hook.headers == {"X-A": "1", "Authorization": "Bearer a:b"}
    with pytest.raises(FormError, match="line 1") as raised:
        webhook_input(form(url="https://example.com/h", headers="no colon here"))
    assert raised.value.field == "headers"
    with pytest.raises(FormError, match="needs a URL"):
        webhook_input(form())
    assert webhook_input(form(action="task")) is None


def test_the_account_is_the_callers_only_one_or_the_chosen_one() -> None:
    mine = uuid.uuid4()
    assert account_of(form(), frozenset({mine})) == mine
    other = uuid.uuid4()
    assert account_of(form(account_id=str(other)), frozenset({mine, other})) == other
    with pytest.raises(FormError) as raised:
        account_of(form(), None)
    assert raised.value.field == "account_id"


def test_unknown_choices_and_deep_json_are_form_errors() -> None:
    with pytest.raises(FormError) as raised:
        create_body(form(job_type="weekly"))
    assert raised.value.field == "job_type"
    with pytest.raises(FormError) as raised:
        create_body(form(action="both"))
    assert raised.value.field == "action"
    with pytest.raises(FormError, match="nested too deeply"):
        create_body(form(action="task", task_name="t", task_args="[" * 100_000 + "]" * 100_000))


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"job_type": "date", "scheduled_time": "0001-01-01T00:00", "timezone": "Asia/Tokyo"}, "scheduled_time"),
        ({"job_type": "date", "scheduled_time": "9999-12-31T23:00:00Z", "timezone": "Asia/Tokyo"}, "scheduled_time"),
        (
            {"job_type": "interval", "interval_seconds": "60", "start_time": "0001-01-01T00:00:00Z",
             "timezone": "America/New_York"},
            "start_time",
        ),
    ],
)  # fmt: skip
def test_a_time_no_zone_can_show_is_the_apis_validation_error(values: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationFailedError) as raised:
        draft_from(create_body(form(**values)), datetime.now(UTC))
    assert raised.value.field == field


def test_saving_an_edit_keeps_an_interval_anchor_to_the_microsecond() -> None:
    anchor = datetime(2026, 10, 25, 1, 30, 0, 123456, tzinfo=UTC)  # 02:30 CET: the second 02:30 in Paris that day
    created = create_body(form(job_type="interval", interval_seconds="60", timezone="Europe/Paris"))
    values = msgspec.structs.asdict(created) | {
        "id": 1, "uuid": str(uuid.uuid4()), "interval_anchor": anchor, "status": "pending", "created_at": anchor,
        "updated_at": anchor, "last_run_at": None, "next_run_at": None,
    }  # fmt: skip
    job = NexusJob(**{name: values.get(name) for name in NexusJob.__struct_fields__})
    shown = form_of(job, None, uuid.uuid4())
    shown.values["name"] = "renamed"
    changes = changes_from(update_body(shown, job), job, datetime.now(UTC))
    assert isinstance(changes.schedule, IntervalSchedule) and changes.schedule.anchor == anchor
    # A browser sends a datetime-local value without its seconds when they are zero.
    shown.values["start_time"] = shown.values["start_time"].removesuffix(":00")
    changes = changes_from(update_body(shown, job), job, datetime.now(UTC))
    assert isinstance(changes.schedule, IntervalSchedule) and changes.schedule.anchor == anchor
    shown.values["start_time"] = "2027-01-01T00:00:00"
    changes = changes_from(update_body(shown, job), job, datetime.now(UTC))
    assert isinstance(changes.schedule, IntervalSchedule)
    assert changes.schedule.anchor == datetime(2026, 12, 31, 23, tzinfo=UTC)
