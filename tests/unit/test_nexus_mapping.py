"""The NEXUS mapping: a create body through the core's job input to a new job, and the job's read-model record back
to the NEXUS shape, every schedule kind both ways.

Through the mapping's public functions and the attributes of what they return, so the tests hold wherever the draft
types live.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from services.api.core.fields import MisfirePolicyBody
from services.api.core.job_input import JobInput
from services.api.core.job_mapping import draft_from
from services.api.nexus.mapping import job_input
from services.api.nexus.read_models import nexus_job, whole
from services.api.nexus.schemas import NexusJob, NexusJobCreate, NexusJobUpdate
from shared.contracts.jobs import MisfirePolicy, RetryPolicy, TaskSpec
from shared.contracts.schedules import CalendarRule, CalendarSchedule, CronSchedule, DateSchedule, IntervalSchedule
from shared.domain.job_commands import JobDraft
from tests.unit.test_job_mapping import JOB_ID, NOW, record_of

pytestmark = pytest.mark.unit


def create(**fields: Any) -> NexusJobCreate:
    """A create body as the HTTP layer decodes it (its constraints checked)."""
    return msgspec.convert({"name": "job"} | fields, NexusJobCreate)


def new(body: NexusJobCreate) -> JobDraft:
    """The job a create body makes, through the core's job input."""
    return draft_from(job_input(body), NOW)


def shown(**fields: Any) -> NexusJob:
    """The job a create body makes, as this surface shows it."""
    return nexus_job(record_of(new(create(**fields))))


def test_every_field_of_the_documents_bodies_is_a_field_of_the_job_input() -> None:
    renamed = {"job_type": "kind", "is_active": "enabled", "misfire_policy": "misfire", "overlap_policy": "overlap"}
    for body in (NexusJobCreate, NexusJobUpdate):
        assert {renamed.get(f, f) for f in body.__struct_fields__} <= set(JobInput.__struct_fields__)
    assert job_input(msgspec.convert({"name": "a", "is_active": False}, NexusJobUpdate)) == JobInput(
        name="a", enabled=False
    )
    assert job_input(create(misfire_policy=None)).misfire is msgspec.UNSET  # null: the default policy


# --- Schedules, each kind both ways ----------------------------------------------------------------------------------

KIND_FIELDS = ("cron_expression", "interval_seconds", "scheduled_time", "calendar_rule")
RULE = CalendarRule(weekdays=(1, 5), times=("09:00",))
SCHEDULES = [
    pytest.param(
        {"job_type": "cron", "cron_expression": "*/5 * * * *"},
        CronSchedule(expression="*/5 * * * *"),
        {"cron_expression": "*/5 * * * *"},
        id="cron",
    ),
    pytest.param(
        {"job_type": "interval", "interval_seconds": 90},
        IntervalSchedule(every_seconds=90, anchor=NOW),
        {"interval_seconds": 90},
        id="interval",
    ),
    pytest.param(
        {"job_type": "interval", "interval_seconds": 1.5, "start_time": "2026-06-01T08:00:00"},
        IntervalSchedule(every_seconds=1.5, anchor=datetime(2026, 6, 1, 8, tzinfo=UTC)),
        {"interval_seconds": 1.5},
        id="interval-from-a-start-time",
    ),
    pytest.param(
        {"job_type": "date", "scheduled_time": "2027-01-02T03:04:05+01:00"},
        DateSchedule(at=datetime(2027, 1, 2, 2, 4, 5, tzinfo=UTC)),
        {"scheduled_time": datetime(2027, 1, 2, 2, 4, 5, tzinfo=UTC)},
        id="date",
    ),
    pytest.param(
        {"job_type": "calendar", "calendar_rule": {"weekdays": [1, 5], "times": ["09:00"]}},
        CalendarSchedule(rule=RULE, anchor=NOW),
        {"calendar_rule": msgspec.to_builtins(RULE)},
        id="calendar-rule",
    ),
    pytest.param(
        {"job_type": "calendar", "calendar_rule": "FREQ=WEEKLY;BYDAY=MO"},
        CalendarSchedule(rrule="FREQ=WEEKLY;BYDAY=MO", anchor=NOW),
        {"calendar_rule": "FREQ=WEEKLY;BYDAY=MO"},
        id="calendar-rrule",
    ),
]


@pytest.mark.parametrize(("fields", "schedule", "kind_fields"), SCHEDULES)
def test_each_schedule_kind_becomes_its_schedule_and_reads_back_the_same(
    fields: dict[str, Any], schedule: object, kind_fields: dict[str, Any]
) -> None:
    draft = new(create(**fields))
    assert draft.schedule == schedule
    job = nexus_job(record_of(draft))
    assert job.job_type == fields["job_type"]
    assert {name: getattr(job, name) for name in KIND_FIELDS} == dict.fromkeys(KIND_FIELDS) | kind_fields


def test_an_interval_shows_its_anchor() -> None:
    assert shown(job_type="interval", interval_seconds=60).interval_anchor == NOW
    assert shown(job_type="cron", cron_expression="0 * * * *").interval_anchor is None


@pytest.mark.parametrize(
    ("zone", "wall", "instant"),
    [
        ("Europe/Berlin", "2027-07-01T09:00:00", datetime(2027, 7, 1, 7, tzinfo=UTC)),
        ("America/New_York", "2027-01-15T09:00:00", datetime(2027, 1, 15, 14, tzinfo=UTC)),
        ("America/New_York", "2027-01-15T09:00:00Z", datetime(2027, 1, 15, 9, tzinfo=UTC)),
        ("America/New_York", "2027-01-15T09:00:00+01:00", datetime(2027, 1, 15, 8, tzinfo=UTC)),
    ],
)
def test_a_time_without_an_offset_is_wall_clock_time_in_the_jobs_zone(zone: str, wall: str, instant: datetime) -> None:
    draft = new(create(job_type="date", scheduled_time=wall, timezone=zone))
    assert draft.schedule == DateSchedule(at=instant) and draft.timezone == zone
    interval = new(create(job_type="interval", interval_seconds=60, start_time=wall, timezone=zone))
    assert interval.schedule == IntervalSchedule(every_seconds=60, anchor=instant)


# --- Every other field, both ways ------------------------------------------------------------------------------------


def test_every_field_of_a_create_body_reaches_the_job_and_reads_back() -> None:
    body: dict[str, Any] = {
        "name": "nightly",
        "description": "builds the report",
        "cron_expression": "0 2 * * *",
        "task_name": "reports.build",
        "task_args": [1, "two"],
        "task_kwargs": {"k": [3]},
        "timezone": "Asia/Kolkata",
        "is_active": False,
        "max_retries": 4,
        "retry_delay": 2.5,
        "retry_backoff": True,
        "priority": 9,
        "misfire_policy": {"policy": "fire_latest", "grace_seconds": 30},
        "overlap_policy": "queue_one",
        "jitter_seconds": 12,
        "start_at": "2026-06-01T00:00:00Z",
        "end_at": "2027-06-01T00:00:00Z",
        "tags": ["a", "b"],
        "metadata": {"team": "x"},
        "created_by": "alice",
    }
    draft = new(create(**body))
    assert (draft.name, draft.description, draft.timezone, draft.enabled) == (
        "nightly",
        "builds the report",
        "Asia/Kolkata",
        False,
    )
    assert draft.task == TaskSpec(name="reports.build", args=(1, "two"), kwargs={"k": [3]})
    assert draft.retry == RetryPolicy(max_attempts=5, base_delay_seconds=2.5, backoff="exponential")
    assert draft.misfire == MisfirePolicy(policy="fire_latest", grace_seconds=30)
    assert (draft.overlap, draft.jitter_seconds, draft.priority) == ("queue_one", 12, 9)
    assert (draft.start_at, draft.end_at) == (datetime(2026, 6, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC))
    assert (draft.tags, draft.metadata, draft.created_by) == (("a", "b"), {"team": "x"}, "alice")

    job = nexus_job(record_of(draft, last_run_at=NOW, next_run_at=NOW + timedelta(days=1)))
    back = msgspec.to_builtins(job)
    given = msgspec.to_builtins(create(**body))
    assert {name: back[name] for name in body} == {name: given[name] for name in body}  # every field as given
    assert (job.id, job.uuid, job.job_type, job.status) == (7, str(JOB_ID), "cron", "paused")
    assert (job.created_at, job.updated_at, job.last_run_at, job.next_run_at) == (
        NOW,
        NOW,
        NOW,
        NOW + timedelta(days=1),
    )


def test_the_defaults_of_a_create_body() -> None:
    draft = new(create(cron_expression="* * * * *"))
    assert (draft.task, draft.timezone, draft.enabled, draft.priority, draft.overlap) == (None, "UTC", True, 5, "allow")
    assert draft.retry == RetryPolicy(max_attempts=4, base_delay_seconds=60, backoff="exponential")
    assert draft.misfire == MisfirePolicy()
    job = nexus_job(record_of(draft))
    assert (job.task_name, job.task_args, job.task_kwargs) == (None, [], {})
    assert (job.max_retries, job.retry_delay, job.retry_backoff) == (3, 60, True)
    assert job.misfire_policy == MisfirePolicyBody()


@pytest.mark.parametrize(
    ("backoff", "delay", "policy"),
    [
        (False, 10, RetryPolicy(max_attempts=1, base_delay_seconds=10, backoff="fixed")),
        # A delay above the default cap raises the cap to it: the delay asked for is the delay waited.
        (True, 7200, RetryPolicy(max_attempts=1, base_delay_seconds=7200, max_delay_seconds=7200)),
    ],
)
def test_the_retry_fields_make_the_whole_policy(backoff: bool, delay: float, policy: RetryPolicy) -> None:
    draft = new(create(cron_expression="* * * * *", max_retries=0, retry_delay=delay, retry_backoff=backoff))
    assert draft.retry == policy
    job = nexus_job(record_of(draft))
    assert (job.max_retries, job.retry_delay, job.retry_backoff) == (0, delay, backoff)


def test_repeated_tags_are_kept_once_in_their_order() -> None:
    assert new(create(cron_expression="* * * * *", tags=["b", "a", "b"])).tags == ("b", "a")


def test_a_stored_job_without_a_retry_policy_shows_the_default_one() -> None:
    job = nexus_job(record_of(new(create(cron_expression="* * * * *")), retry=None))
    assert (job.max_retries, job.retry_delay, job.retry_backoff) == (2, 60, True)


def test_whole_seconds_are_shown_as_integers() -> None:
    assert (whole(60.0), type(whole(60.0)), whole(1.5), whole(0.0)) == (60, int, 1.5, 0)
    job = nexus_job(record_of(new(create(job_type="interval", interval_seconds=30.0)), jitter_seconds=2.0))
    assert msgspec.json.encode(job).count(b'"interval_seconds":30,') == 1
    assert (type(job.interval_seconds), type(job.jitter_seconds), type(job.retry_delay)) == (int, int, int)
