"""The NEXUS mapping of a PUT: only the fields given become changes, and the retry and task fields become patches
applied to the job's own policy and task, so a PUT of one retry field never rebuilds the others from a stale read."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from msgspec import UNSET

from services.api.core.api_errors import ValidationFailedError
from services.api.core.job_mapping import changes_from
from services.api.core.job_queries import JobRecord
from services.api.nexus.errors import nexus_field
from services.api.nexus.mapping import job_input
from services.api.nexus.schemas import NexusJobCreate, NexusJobUpdate
from shared.contracts.jobs import MisfirePolicy, RetryPolicy, TaskSpec
from shared.contracts.schedules import CalendarRule, CalendarSchedule, CronSchedule, DateSchedule, IntervalSchedule
from shared.domain.errors import ValidationFailed
from tests.unit.test_job_mapping import record_of
from tests.unit.test_nexus_mapping import NOW, new

pytestmark = pytest.mark.unit

LATER = NOW + timedelta(days=1)
# Every field a change may name (as in JobState): the ones a PUT did not give are UNSET.
FIELDS = (
    "name",
    "schedule",
    "type",
    "timezone",
    "enabled",
    "task",
    "retry",
    "timeout_seconds",
    "misfire",
    "overlap",
    "jitter_seconds",
    "start_at",
    "end_at",
    "priority",
    "description",
    "tags",
    "metadata",
)


def current(**fields: Any) -> JobRecord:
    """A job as the read model has it (an hourly cron job unless `fields` say otherwise)."""
    default = {} if "job_type" in fields else {"cron_expression": "0 * * * *"}
    body = msgspec.convert({"name": "job"} | default | fields, NexusJobCreate)
    return record_of(new(body))


def changes(job: JobRecord | None = None, **fields: Any) -> dict[str, Any]:
    """The changes a PUT of `fields` makes to `job`, only the given ones."""
    update = msgspec.convert(fields, NexusJobUpdate)
    made = changes_from(job_input(update), job or current(), LATER)
    return {name: getattr(made, name) for name in FIELDS if getattr(made, name, UNSET) is not UNSET}


def test_an_empty_put_changes_nothing() -> None:
    assert changes() == {}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "renamed"}, {"name": "renamed"}),
        ({"description": "d"}, {"description": "d"}),
        ({"description": None}, {"description": None}),
        ({"is_active": False}, {"enabled": False}),
        ({"priority": 10}, {"priority": 10}),
        ({"overlap_policy": "skip"}, {"overlap": "skip"}),
        ({"jitter_seconds": 4.5}, {"jitter_seconds": 4.5}),
        ({"start_at": "2026-06-01T00:00:00Z"}, {"start_at": datetime(2026, 6, 1, tzinfo=UTC)}),
        ({"end_at": None}, {"end_at": None}),
        ({"tags": ["x", "y", "x"]}, {"tags": ("x", "y")}),
        ({"metadata": {"k": 1}}, {"metadata": {"k": 1}}),
        ({"misfire_policy": {"policy": "skip"}}, {"misfire": MisfirePolicy(policy="skip")}),
        ({"timezone": "Europe/Paris"}, {"timezone": "Europe/Paris"}),
        ({"cron_expression": "*/2 * * * *"}, {"schedule": CronSchedule(expression="*/2 * * * *")}),
    ],
)
def test_each_field_given_is_the_only_change(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    assert changes(**fields) == expected


POLICY = RetryPolicy(max_attempts=9, base_delay_seconds=5, backoff="linear", jitter=0.25, max_delay_seconds=100)


@pytest.mark.parametrize(
    ("fields", "policy"),
    [
        ({"max_retries": 2}, msgspec.structs.replace(POLICY, max_attempts=3)),
        ({"retry_delay": 30}, msgspec.structs.replace(POLICY, base_delay_seconds=30)),
        ({"retry_delay": 500}, msgspec.structs.replace(POLICY, base_delay_seconds=500, max_delay_seconds=500)),
        ({"retry_backoff": False}, msgspec.structs.replace(POLICY, backoff="fixed")),
        ({"retry_backoff": True}, POLICY),  # a growing backoff stays as it is (linear)
        ({"max_retries": 0, "retry_backoff": False}, msgspec.structs.replace(POLICY, max_attempts=1, backoff="fixed")),
    ],
)
def test_retry_fields_patch_the_policy_the_job_has(fields: dict[str, Any], policy: RetryPolicy) -> None:
    made = changes(**fields)
    assert made.keys() == {"retry"}
    assert made["retry"].applied_to(POLICY) == policy


def test_growing_makes_a_fixed_backoff_exponential() -> None:
    fixed = msgspec.structs.replace(POLICY, backoff="fixed")
    assert changes(retry_backoff=True)["retry"].applied_to(fixed).backoff == "exponential"


TASK = TaskSpec(name="old.task", args=(1,), kwargs={"a": 1})


@pytest.mark.parametrize(
    ("fields", "task"),
    [
        ({"task_name": "new.task"}, TaskSpec(name="new.task", args=(1,), kwargs={"a": 1})),
        ({"task_args": [2, 3]}, TaskSpec(name="old.task", args=(2, 3), kwargs={"a": 1})),
        ({"task_kwargs": {}}, TaskSpec(name="old.task", args=(1,), kwargs={})),
        ({"task_name": None, "task_args": [], "task_kwargs": {}}, None),
    ],
)
def test_task_fields_patch_the_task_the_job_has(fields: dict[str, Any], task: TaskSpec | None) -> None:
    made = changes(**fields)
    assert made.keys() == {"task"}
    assert made["task"].applied_to(TASK) == task


def test_removing_the_task_but_keeping_its_arguments_is_refused_when_applied() -> None:
    # Applied inside the domain's decision, so the refusal is the domain's, naming the neutral field; NEXUS
    # renders it as task_name (tests/unit/test_job_checks.py).
    with pytest.raises(ValidationFailed, check=lambda e: e.field == "task"):
        changes(task_name=None)["task"].applied_to(TASK)


# --- Schedules: the fields of the job's type, or of the new type --------------------------------------------------


def test_an_interval_keeps_its_anchor_when_only_the_period_changes_and_its_period_when_only_the_start_does() -> None:
    job = current(job_type="interval", interval_seconds=45, start_time="2026-06-01T00:00:00Z")
    anchor = datetime(2026, 6, 1, tzinfo=UTC)
    assert changes(job, interval_seconds=120) == {"schedule": IntervalSchedule(every_seconds=120, anchor=anchor)}
    assert changes(job, start_time="2026-07-01T09:00:00") == {
        "schedule": IntervalSchedule(every_seconds=45, anchor=datetime(2026, 7, 1, 9, tzinfo=UTC))
    }


def test_a_calendar_keeps_its_anchor_when_its_rule_changes() -> None:
    job = current(job_type="calendar", calendar_rule="FREQ=DAILY")
    kept = msgspec.structs.replace(job.schedule, anchor=NOW - timedelta(days=3))  # the anchor the job holds
    assert changes(dataclasses.replace(job, schedule=kept), calendar_rule={"times": ["10:00"]}) == {
        "schedule": CalendarSchedule(rule=CalendarRule(times=("10:00",)), anchor=NOW - timedelta(days=3))
    }


def test_a_new_job_type_takes_its_own_field_in_the_new_time_zone() -> None:
    made = changes(job_type="date", scheduled_time="2026-08-01T09:00:00", timezone="Asia/Tokyo")
    assert made == {"schedule": DateSchedule(at=datetime(2026, 8, 1, tzinfo=UTC)), "timezone": "Asia/Tokyo"}
    assert changes(job_type="interval", interval_seconds=30) == {
        "schedule": IntervalSchedule(every_seconds=30, anchor=LATER)  # counted from the change
    }


def test_a_time_zone_alone_leaves_the_schedule_as_it_is() -> None:
    job = current(job_type="date", scheduled_time="2026-08-01T09:00:00Z")
    assert changes(job, timezone="Asia/Tokyo") == {"timezone": "Asia/Tokyo"}


@pytest.mark.parametrize(
    ("fields", "field", "missing"),
    [
        ({"job_type": "interval"}, "interval_seconds", True),
        ({"job_type": "date", "cron_expression": "* * * * *"}, "cron_expression", False),
        ({"interval_seconds": 5}, "interval_seconds", False),
        ({"start_time": "2026-07-01T00:00:00Z"}, "start_time", False),
        ({"timezone": "Nowhere/Else"}, "timezone", False),
        ({"job_type": "date", "scheduled_time": "9999-01-01T00:00:00Z"}, "scheduled_time", False),
        ({"job_type": "calendar", "calendar_rule": {"dayz": [1]}}, "calendar_rule", False),
    ],
)
def test_a_put_that_does_not_fit_the_jobs_type_is_refused(fields: dict[str, Any], field: str, missing: bool) -> None:
    with pytest.raises(ValidationFailedError) as caught:
        changes(**fields)
    assert nexus_field(caught.value.field, caught.value.schedule_kind) == field
    assert caught.value.missing is missing
