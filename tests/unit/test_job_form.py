"""The dashboard's job form: read into the core's job input, with each error on the box at fault, and filled in from
a job for editing so that saving it unchanged changes nothing it showed."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime

import pytest
from msgspec import UNSET

from services.api.core.api_errors import ValidationFailedError
from services.api.core.fields import MisfirePolicyBody
from services.api.core.job_mapping import changes_from, draft_from
from services.api.core.job_queries import JobRecord
from services.api.ui.backfill_form import BackfillForm, backfill_form_from, backfill_input, new_backfill_form
from services.api.ui.form_input import create_input, update_input, webhook_input
from services.api.ui.job_form import FormError, JobForm, account_of, box_of, form_of, new_form
from services.api.ui.job_view import job_view
from shared.contracts.jobs import FlowControl, TaskSpec
from shared.contracts.schedules import CalendarRule, CalendarSchedule, DateSchedule, Exclusions, IntervalSchedule
from shared.domain.job_patches import TaskPatch
from tests.unit.test_job_mapping import record_of

pytestmark = pytest.mark.unit


def form(**values: str) -> JobForm:
    return JobForm(values={**new_form().values, "name": "n", **values})


def test_a_cron_webhook_form_becomes_the_job_input() -> None:
    given = create_input(form(cron_expression="0 9 * * 1-5", timezone="Europe/Paris", tags="a, b,,a ", max_retries="0"))
    assert (given.kind, given.cron_expression, given.timezone) == ("cron", "0 9 * * 1-5", "Europe/Paris")
    assert (given.tags, given.max_retries, given.enabled, given.task_name) == (["a", "b", "a"], 0, True, UNSET)
    assert (given.misfire, given.overlap, given.retry_backoff) == (MisfirePolicyBody(), "allow", True)


def test_a_date_from_a_datetime_local_box_is_wall_time_in_the_jobs_zone() -> None:
    given = create_input(form(job_type="date", scheduled_time="2030-03-31T09:15", timezone="Europe/Paris"))
    draft = draft_from(given, datetime.now(UTC))
    assert draft.schedule == DateSchedule(at=datetime(2030, 3, 31, 7, 15, tzinfo=UTC))


def test_a_calendar_rule_is_json_or_an_rrule() -> None:
    assert create_input(form(job_type="calendar", calendar_rule='{"weekdays": [1]}')).calendar_rule == {"weekdays": [1]}
    assert create_input(form(job_type="calendar", calendar_rule="FREQ=DAILY")).calendar_rule == "FREQ=DAILY"


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
        # The job input names these two otherwise; the error is placed on the form's own box.
        ({"misfire_grace_seconds": "soon"}, "misfire_policy", "Expected `float | null`"),
        ({"overlap_policy": "sometimes"}, "overlap_policy", "Invalid enum value 'sometimes'"),
    ],
)
def test_bad_values_are_errors_on_their_field(values: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(FormError) as raised:
        create_input(form(**values))
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
        create_input(form(job_type="weekly"))
    assert raised.value.field == "job_type"
    with pytest.raises(FormError) as raised:
        create_input(form(action="both"))
    assert raised.value.field == "action"
    with pytest.raises(FormError, match="nested too deeply"):
        create_input(form(action="task", task_name="t", task_args="[" * 100_000 + "]" * 100_000))


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
        draft_from(create_input(form(**values)), datetime.now(UTC))
    assert FormError.of(raised.value).field == field


def edited(job: JobRecord, **values: str) -> JobForm:
    """The form filled in from `job`, with `values` typed over it."""
    shown = form_of(job_view(job), None, job.account_id)
    shown.values.update(values)
    return shown


def record(**values: str) -> JobRecord:
    """A job created through the form, as the read model has it."""
    return record_of(draft_from(create_input(form(**values)), datetime.now(UTC)))


@pytest.mark.parametrize(
    "values",
    [
        {"cron_expression": "0 9 * * 1-5", "timezone": "Europe/Paris", "tags": "a, b"},
        {"job_type": "interval", "interval_seconds": "90", "start_time": "2026-06-01T08:00:00"},
        {"job_type": "interval", "interval_seconds": "1.5"},
        {"job_type": "date", "scheduled_time": "2030-03-31T09:15:00", "timezone": "Asia/Tokyo"},
        {"job_type": "calendar", "calendar_rule": '{"weekdays": [1, 5], "times": ["09:00"]}'},
        {"job_type": "calendar", "calendar_rule": "FREQ=WEEKLY;BYDAY=MO"},
        {"cron_expression": "* * * * *", "action": "task", "task_name": "t.run", "task_args": "[1]",
         "task_kwargs": '{"k": 2}', "max_retries": "0", "retry_delay": "2.5", "retry_backoff": ""},
    ],
)  # fmt: skip
def test_a_job_saved_as_shown_changes_nothing_but_its_boxes_as_given(values: dict[str, str]) -> None:
    job = record(**values)
    made = changes_from(update_input(edited(job), job_view(job)), job, datetime.now(UTC))
    # Every kind of schedule reads back into its boxes as it was (the field of its kind is sent, so it is given).
    assert made.schedule in (UNSET, job.schedule)
    assert made.task is UNSET or made.task.applied_to(job.task) == job.task
    assert made.retry is UNSET or made.retry.applied_to(job.retry) == job.retry


def test_a_task_job_made_a_webhook_job_loses_its_task_and_a_calendar_keeps_its_anchor() -> None:
    job = record(cron_expression="* * * * *", action="task", task_name="t.run", task_args="[1]")
    made = changes_from(update_input(edited(job, action="webhook"), job_view(job)), job, datetime.now(UTC))
    assert made.task == TaskPatch(name=None, args=(), kwargs={}) and made.task.applied_to(job.task) is None
    assert made.task.applied_to(TaskSpec(name="other")) is None
    calendar = record(job_type="calendar", calendar_rule="FREQ=DAILY")
    made = changes_from(update_input(edited(calendar, calendar_rule='{"times": ["10:00"]}'), job_view(calendar)),
                        calendar, datetime.now(UTC))  # fmt: skip
    assert isinstance(calendar.schedule, CalendarSchedule)
    assert made.schedule == CalendarSchedule(rule=CalendarRule(times=("10:00",)), anchor=calendar.schedule.anchor)


def test_saving_an_edit_keeps_an_interval_anchor_to_the_microsecond() -> None:
    anchor = datetime(2026, 10, 25, 1, 30, 0, 123456, tzinfo=UTC)  # 02:30 CET: the second 02:30 in Paris that day
    created = record(job_type="interval", interval_seconds="60", timezone="Europe/Paris")
    job = dataclasses.replace(created, schedule=IntervalSchedule(every_seconds=60.0, anchor=anchor))
    shown = edited(job, name="renamed")
    changes = changes_from(update_input(shown, job_view(job)), job, datetime.now(UTC))
    assert changes.schedule == job.schedule and changes.name == "renamed"
    # A browser sends a datetime-local value without its seconds when they are zero.
    shown.values["start_time"] = shown.values["start_time"].removesuffix(":00")
    changes = changes_from(update_input(shown, job_view(job)), job, datetime.now(UTC))
    assert changes.schedule == job.schedule
    shown.values["start_time"] = "2027-01-01T00:00:00"
    changes = changes_from(update_input(shown, job_view(job)), job, datetime.now(UTC))
    assert isinstance(changes.schedule, IntervalSchedule)
    assert changes.schedule == IntervalSchedule(every_seconds=60, anchor=datetime(2026, 12, 31, 23, tzinfo=UTC))


def test_exclusions_go_through_the_form_one_a_line_and_come_back_as_shown() -> None:
    job = record(cron_expression="0 9 * * 1-5", exclusions="2026-12-25\n\n* * 24 12 *\n 2027-01-01 ")
    assert job.exclusions == Exclusions(dates=(date(2026, 12, 25), date(2027, 1, 1)), rules=("* * 24 12 *",))
    shown = edited(job)
    assert shown.get("exclusions") == "2026-12-25\n2027-01-01\n* * 24 12 *"
    now = datetime.now(UTC)
    assert changes_from(update_input(shown, job_view(job)), job, now).exclusions == job.exclusions
    assert changes_from(update_input(edited(job, exclusions=" \n"), job_view(job)), job, now).exclusions is None
    assert record(cron_expression="0 9 * * *").exclusions is None
    with pytest.raises(FormError) as bad:
        create_input(form(cron_expression="0 9 * * *", exclusions="2026-13-45"))
    assert bad.value.field == "exclusions"
    assert box_of("exclusions") == "exclusions"  # where the API's error on a bad rule is shown


def test_callback_urls_go_through_the_form_and_an_emptied_box_stops_them() -> None:
    job = record(cron_expression="0 9 * * *", callback_url=" https://example.com/results ", failure_callback_url="")
    assert (job.callback_url, job.failure_callback_url) == ("https://example.com/results", None)
    shown = edited(job)
    assert (shown.get("callback_url"), shown.get("failure_callback_url")) == ("https://example.com/results", "")
    now = datetime.now(UTC)
    unchanged = changes_from(update_input(shown, job_view(job)), job, now)
    assert (unchanged.callback_url, unchanged.failure_callback_url) == ("https://example.com/results", None)
    changed = changes_from(
        update_input(edited(job, callback_url="", failure_callback_url="https://example.com/dead"), job_view(job)),
        job,
        now,
    )
    assert (changed.callback_url, changed.failure_callback_url) == (None, "https://example.com/dead")
    assert box_of("callback_url") == "callback_url"  # where the API's error on a bad URL is shown


def test_flow_control_goes_through_the_form_and_needs_a_key_for_its_limits() -> None:
    job = record(cron_expression="0 9 * * *", flow_key=" billing ", flow_parallelism="10", flow_period_seconds="")
    assert job.flow_control == FlowControl(key="billing", parallelism=10)
    shown = edited(job)
    assert (shown.get("flow_key"), shown.get("flow_parallelism"), shown.get("flow_period_seconds")) == (
        "billing",
        "10",
        "1",
    )
    now = datetime.now(UTC)
    assert changes_from(update_input(shown, job_view(job)), job, now).flow_control == job.flow_control
    lifted = changes_from(update_input(edited(job, flow_key="", flow_parallelism=""), job_view(job)), job, now)
    assert lifted.flow_control is None
    with pytest.raises(FormError) as bad:
        create_input(form(cron_expression="0 9 * * *", flow_rate="5"))
    assert bad.value.field == "flow_key"
    with pytest.raises(FormError) as bad:
        create_input(form(cron_expression="0 9 * * *", flow_key="b", flow_parallelism="0"))
    assert bad.value.field == "flow_key"  # the API's refusal of a bound, shown on the key's box


# The job page's other form: a backfill's range and rate.


def test_a_backfill_forms_datetime_local_boxes_are_utc_and_its_rate_defaults_to_ten() -> None:
    given = backfill_input(
        backfill_form_from({"start": "2026-11-23T09:15", "end": " 2026-11-23T10:00:30 ", "per_second": "",
                            "_csrf_token": "x", "other": "y"})
    )  # fmt: skip
    assert given.start == datetime(2026, 11, 23, 9, 15, tzinfo=UTC)
    assert given.end == datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)
    assert given.per_second == 10
    offset = backfill_input(BackfillForm(values={"start": "2026-11-23T09:15+01:00", "end": "2026-11-23T10:00"}))
    assert offset.start == datetime(2026, 11, 23, 8, 15, tzinfo=UTC)


def test_a_new_backfill_form_offers_an_hour_ending_a_minute_before_now() -> None:
    shown = new_backfill_form(datetime(2026, 11, 23, 10, 7, 42, tzinfo=UTC))
    assert shown.values == {"start": "2026-11-23T09:06", "end": "2026-11-23T10:06", "per_second": "10"}
    assert backfill_input(shown).end == datetime(2026, 11, 23, 10, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"end": "2026-11-23T10:00"}, "start", "start: a time is required"),
        ({"start": "2026-11-23T09:00", "end": "yesterday"}, "end", "end must be a time such as"),
        ({"start": "0001-01-01T00:00", "end": "2026-11-23T10:00"}, "start", "start must be"),
        ({"start": "2026-11-23T09:00", "end": "2026-11-23T10:00", "per_second": "fast"}, "per_second", "whole number"),
    ],
)
def test_a_backfill_form_value_that_cannot_be_read_is_an_error_on_its_box(
    values: dict[str, str], field: str, message: str
) -> None:
    with pytest.raises(ValidationFailedError) as bad:
        backfill_input(BackfillForm(values=values))
    assert bad.value.field == field and message in bad.value.detail, bad.value.detail
    shown = BackfillForm(values=values)
    shown.fail(bad.value.detail, bad.value.field)
    assert shown.errors == {field: bad.value.detail}
    whole = BackfillForm()
    whole.fail("a chained job has no schedule of its own", "job_id")  # the core's error about the job: the form's
    assert whole.errors == {"form": "a chained job has no schedule of its own"}
