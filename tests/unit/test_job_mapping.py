"""The core's job mapping (services/api/core/job_mapping.py): a JobInput to a new job or to the changes to a job,
with refusals that name the neutral field (each surface names it its own way: test_job_checks.py). The surfaces'
own mappings into a JobInput are tested in test_nexus_mapping.py, test_nexus_changes.py and test_job_form.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import msgspec
import pytest
from msgspec import UNSET

from services.api.core.api_errors import ValidationFailedError
from services.api.core.fields import MisfirePolicyBody
from services.api.core.job_input import JobInput
from services.api.core.job_mapping import changes_from, draft_from
from services.api.core.job_queries import JobRecord, job_record
from shared.contracts.jobs import JobState, MisfirePolicy, RetryPolicy
from shared.contracts.schedules import CalendarSchedule, CronSchedule, DateSchedule, IntervalSchedule
from shared.domain.job_patches import RetryPatch, TaskPatch

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 4, 12, 30, tzinfo=UTC)
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
JOB_ID = uuid.UUID("22222222-2222-2222-2222-222222222222")


def state(schedule: Any, timezone: str = "UTC") -> JobState:
    """A job's event-sourced state: what a change may be mapped against, as well as a read model's record."""
    return JobState(
        id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        name="j",
        type=0,
        schedule=schedule,
        timezone=timezone,
        created_at=ANCHOR,
        updated_at=ANCHOR,
    )


def record_of(draft: Any, **columns: Any) -> JobRecord:
    """The read-model record of a job created from `draft`, as the projector writes its row and the core reads it."""
    values = {
        "id": JOB_ID,
        "account_id": JOB_ID,
        "number": 7,
        "type": draft.type,
        "timeout_seconds": draft.timeout_seconds,
        "name": draft.name,
        "description": draft.description,
        "schedule": msgspec.to_builtins(draft.schedule),
        "timezone": draft.timezone,
        "enabled": draft.enabled,
        "task": msgspec.to_builtins(draft.task) if draft.task is not None else None,
        "retry": msgspec.to_builtins(draft.retry),
        "misfire": msgspec.to_builtins(draft.misfire),
        "overlap": draft.overlap,
        "jitter_seconds": draft.jitter_seconds,
        "start_at": draft.start_at,
        "end_at": draft.end_at,
        "exclusions": msgspec.to_builtins(draft.exclusions) if draft.exclusions is not None else None,
        "callback_url": draft.callback_url,
        "failure_callback_url": draft.failure_callback_url,
        "flow_control": msgspec.to_builtins(draft.flow_control) if draft.flow_control is not None else None,
        "priority": draft.priority,
        "tags": list(draft.tags),
        "metadata": draft.metadata,
        "created_by": draft.created_by,
        "created_at": NOW,
        "updated_at": NOW,
        "last_run_at": None,
        "next_run_at": None,
        "status": "pending" if draft.enabled else "paused",
    }
    return job_record(cast(asyncpg.Record, values | columns))


def refusal(call: Any) -> tuple[str | None, str | None, bool]:
    with pytest.raises(ValidationFailedError) as caught:
        call()
    return caught.value.field, caught.value.schedule_kind, caught.value.missing


def test_a_new_job_takes_the_defaults_of_what_its_input_leaves_unset() -> None:
    draft = draft_from(JobInput(name="n", cron_expression="0 * * * *"), NOW)
    assert (draft.schedule, draft.timezone, draft.enabled, draft.task) == (
        CronSchedule(expression="0 * * * *"),
        "UTC",
        True,
        None,
    )
    assert draft.retry == RetryPolicy(max_attempts=4, base_delay_seconds=60, backoff="exponential")
    assert (draft.misfire, draft.overlap, draft.priority, draft.tags, draft.metadata) == (
        MisfirePolicy(),
        "allow",
        5,
        (),
        {},
    )
    given = JobInput(name="n", kind="interval", interval_seconds=30, misfire=MisfirePolicyBody(policy="skip"))
    assert draft_from(given, NOW).schedule == IntervalSchedule(every_seconds=30, anchor=NOW)
    assert draft_from(given, NOW).misfire == MisfirePolicy(policy="skip")


@pytest.mark.parametrize(
    ("given", "neutral"),
    [
        (JobInput(cron_expression="* * * * *"), ("name", None, True)),
        (JobInput(name="n", kind="date"), ("schedule", "date", True)),
        (JobInput(name="n", cron_expression="* * * * *", interval_seconds=5), ("schedule", "interval", False)),
        (JobInput(name="n", cron_expression="* * * * *", start_time=NOW), ("anchor", None, False)),
        (
            JobInput(name="n", kind="interval", interval_seconds=5, start_time=datetime(1900, 1, 1, tzinfo=UTC)),
            ("anchor", None, False),
        ),
        (JobInput(name="n", kind="calendar", calendar_rule={"dayz": [1]}), ("schedule", "calendar", False)),
        (JobInput(name="n", cron_expression="* * * * *", task_args=[1]), ("task", None, False)),
        (JobInput(name="n", cron_expression="* * * * *", timezone="Mars/Olympus"), ("timezone", None, False)),
    ],
)
def test_a_refused_input_names_the_neutral_field(given: JobInput, neutral: tuple[str, str | None, bool]) -> None:
    assert refusal(lambda: draft_from(given, NOW)) == neutral


def test_changes_map_against_the_jobs_state_with_patches_for_retry_and_task() -> None:
    interval = state(IntervalSchedule(every_seconds=45, anchor=ANCHOR), "Europe/Paris")
    made = changes_from(JobInput(interval_seconds=120, max_retries=0, task_name=None), interval, NOW)
    assert made.schedule == IntervalSchedule(every_seconds=120, anchor=ANCHOR)
    assert (made.retry, made.task) == (RetryPatch(max_attempts=1), TaskPatch(name=None))
    assert (made.name, made.timezone, made.enabled) == (UNSET, UNSET, UNSET)
    start = changes_from(JobInput(start_time=datetime(2026, 7, 1, 9)), interval, NOW).schedule
    assert start == IntervalSchedule(every_seconds=45, anchor=datetime(2026, 7, 1, 7, tzinfo=UTC))  # Paris time
    calendar = state(CalendarSchedule(rrule="FREQ=DAILY", anchor=ANCHOR))
    assert changes_from(JobInput(calendar_rule="FREQ=WEEKLY"), calendar, NOW).schedule == CalendarSchedule(
        rrule="FREQ=WEEKLY", anchor=ANCHOR
    )
    new_kind = changes_from(JobInput(kind="calendar", calendar_rule="FREQ=WEEKLY"), interval, NOW).schedule
    assert new_kind == CalendarSchedule(rrule="FREQ=WEEKLY", anchor=NOW)  # a new kind counts from the change


def test_a_change_of_kind_needs_its_field_and_others_do_not_apply() -> None:
    cron = state(CronSchedule(expression="0 * * * *"))
    assert refusal(lambda: changes_from(JobInput(kind="interval"), cron, NOW)) == ("schedule", "interval", True)
    assert refusal(lambda: changes_from(JobInput(start_time=NOW), cron, NOW)) == ("anchor", None, False)
    date = state(DateSchedule(at=NOW + timedelta(days=1)))
    assert refusal(lambda: changes_from(JobInput(cron_expression="* * * * *"), date, NOW)) == (
        "schedule",
        "cron",
        False,
    )
