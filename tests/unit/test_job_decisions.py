"""The job aggregate's decisions, as pure functions of the latest event, a command and the time: create, change,
pause, resume, delete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from shared.contracts.jobs import (
    JobCreated,
    JobDeleted,
    JobEvent,
    JobPaused,
    JobResumed,
    JobUpdated,
    RetryPolicy,
    TaskSpec,
)
from shared.contracts.schedules import CronSchedule, DateSchedule, IntervalSchedule
from shared.domain.errors import Conflict, InvalidCron, JobNotFound, ValidationFailed
from shared.domain.job_checks import MAX_WEBHOOKS_PER_JOB
from shared.domain.job_commands import (
    ChangeJob,
    CreateJob,
    DeleteJob,
    JobDraft,
    PauseJob,
    ResumeJob,
    WebhookDraft,
)
from shared.domain.job_decisions import decide
from shared.domain.job_patches import JobChanges, RetryPatch, TaskPatch

pytestmark = pytest.mark.unit

ACCOUNT = uuid.UUID("11111111-1111-1111-1111-111111111111")
NOW = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)
NIGHTLY = CronSchedule(expression="0 2 * * *")


def created(draft: JobDraft | None = None, *, require_target: bool = False) -> JobCreated:
    command = CreateJob(
        account_id=ACCOUNT, draft=draft or JobDraft(name="backup", schedule=NIGHTLY), require_target=require_target
    )
    event = decide(None, command, NOW)
    assert isinstance(event, JobCreated)
    return event


def changed(latest: JobEvent, require_target: bool = False, **changes: object) -> JobEvent | None:
    return decide(latest, ChangeJob(JobChanges(**changes), require_target=require_target), LATER)  # type: ignore[arg-type]


def test_create_checks_the_draft_and_computes_the_next_run() -> None:
    job_id = uuid.uuid4()
    draft = JobDraft(name="b", schedule=CronSchedule(expression="  0   2 * * *"), timezone="America/New_York")
    event = decide(None, CreateJob(account_id=ACCOUNT, draft=draft, job_id=job_id), NOW)
    assert isinstance(event, JobCreated)
    assert (event.job_id, event.job.id, event.account_id, event.version) == (job_id, job_id, ACCOUNT, 1)
    assert event.job.schedule == CronSchedule(expression="0 2 * * *")
    assert event.next_run_at == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 02:00 EST
    assert (event.occurred_at, event.job.created_at, event.job.updated_at) == (NOW, NOW, NOW)
    with pytest.raises(InvalidCron):
        created(JobDraft(name="b", schedule=CronSchedule(expression="0 25 * * *")))
    with pytest.raises(ValidationFailed) as zone:
        created(JobDraft(name="b", schedule=NIGHTLY, timezone="Europe/Atlantis"))
    assert zone.value.field == "timezone"
    with pytest.raises(Conflict):
        decide(event, CreateJob(account_id=ACCOUNT, draft=draft, job_id=job_id), NOW)


def test_create_with_webhooks_and_limits() -> None:
    hooks = (WebhookDraft(url="https://example.com/a"), WebhookDraft(url="https://example.com/b", method="PUT"))
    event = created(JobDraft(name="b", schedule=NIGHTLY, webhooks=hooks))
    assert [(w.url, w.method, w.created_at) for w in event.job.webhooks] == [
        ("https://example.com/a", "POST", NOW),
        ("https://example.com/b", "PUT", NOW),
    ]
    assert len({w.id for w in event.job.webhooks}) == 2
    too_many = tuple(WebhookDraft(url=f"https://example.com/{i}") for i in range(MAX_WEBHOOKS_PER_JOB + 1))
    with pytest.raises(ValidationFailed, match="at most") as error:
        created(JobDraft(name="b", schedule=NIGHTLY, webhooks=too_many))
    assert error.value.field == "webhooks"
    with pytest.raises(ValidationFailed) as bad:
        created(JobDraft(name="b", schedule=NIGHTLY, webhooks=(WebhookDraft(url="ftp://x"),)))
    assert bad.value.field == "url"
    with pytest.raises(ValidationFailed) as slow:
        decide(
            None,
            CreateJob(
                account_id=ACCOUNT,
                draft=JobDraft(name="b", schedule=NIGHTLY, timeout_seconds=30),
                max_timeout_seconds=10,
            ),
            NOW,
        )
    assert slow.value.field == "timeout_seconds"
    assert "at most 10" in slow.value.detail


def test_an_active_job_needs_something_to_run_where_the_surface_asks() -> None:
    with pytest.raises(ValidationFailed) as error:
        created(require_target=True)
    assert (error.value.field, error.value.missing) == ("task", True)
    assert not created(JobDraft(name="p", schedule=NIGHTLY, enabled=False), require_target=True).job.enabled
    task = TaskSpec(name="tasks.report")
    assert created(JobDraft(name="t", schedule=NIGHTLY, task=task), require_target=True).job.task == task
    hook = (WebhookDraft(url="https://example.com/h"),)
    assert created(JobDraft(name="h", schedule=NIGHTLY, webhooks=hook), require_target=True).job.webhooks
    with pytest.raises(ValidationFailed) as name:
        created(JobDraft(name="t", schedule=NIGHTLY, task=TaskSpec(name="bad name")))
    assert name.value.field == "task"


def test_times_need_an_offset_and_a_window_that_is_not_empty() -> None:
    naive = datetime(2027, 1, 1, 9, 0)
    with pytest.raises(ValidationFailed, match="UTC offset"):
        created(JobDraft(name="w", schedule=NIGHTLY, start_at=naive))
    with pytest.raises(ValidationFailed, match="years 1970 to 9000"):
        created(JobDraft(name="w", schedule=NIGHTLY, end_at=datetime(9001, 1, 1, tzinfo=UTC)))
    with pytest.raises(ValidationFailed) as window:
        created(JobDraft(name="w", schedule=NIGHTLY, start_at=LATER, end_at=NOW + timedelta(hours=12)))
    assert (window.value.detail, window.value.field, window.value.schedule_kind) == (
        "the schedule never fires again",
        "schedule",
        "cron",
    )
    with pytest.raises(ValidationFailed) as empty:
        created(JobDraft(name="w", schedule=NIGHTLY, start_at=LATER, end_at=LATER))
    assert (empty.value.detail, empty.value.field) == ("end_at must be after start_at", "end_at")
    paris = datetime(2027, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert created(JobDraft(name="w", schedule=NIGHTLY, start_at=paris)).job.start_at == datetime(
        2027, 1, 1, 9, 0, tzinfo=UTC
    )


def test_a_job_must_fire_again_unless_its_date_just_passed() -> None:
    past = DateSchedule(at=NOW - timedelta(days=1))
    late = created(JobDraft(name="d", schedule=past))  # the ticker puts it through the misfire policy
    assert (late.job.enabled, late.next_run_at) == (True, None)
    with pytest.raises(ValidationFailed) as boxed:
        created(JobDraft(name="d", schedule=past, start_at=NOW))
    assert (boxed.value.detail, boxed.value.field, boxed.value.schedule_kind) == (
        "scheduled_time is in the past",
        "schedule",
        "date",
    )
    with pytest.raises(ValidationFailed) as ended:
        created(JobDraft(name="e", schedule=NIGHTLY, end_at=NOW - timedelta(seconds=1)))
    assert ended.value.field == "end_at"
    paused = created(JobDraft(name="d", schedule=past, enabled=False))
    with pytest.raises(ValidationFailed):
        decide(paused, ResumeJob(), LATER)  # its time went by while it was paused
    assert isinstance(changed(paused, name="still paused"), JobUpdated)


def test_a_change_writes_only_what_changed_and_nothing_is_none() -> None:
    first = created()
    renamed = changed(first, name="nightly")
    assert isinstance(renamed, JobUpdated)
    assert (renamed.changed, renamed.version, renamed.job.name) == (("name",), 2, "nightly")
    assert (renamed.next_run_at, renamed.job.updated_at, renamed.job.created_at) == (first.next_run_at, LATER, NOW)
    assert changed(renamed, name="nightly") is None
    assert changed(renamed, name="nightly", retry=RetryPolicy()) is None
    assert changed(renamed, retry=RetryPatch(max_attempts=3)) is None  # the default already


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "other"),
        ("type", 7),
        ("retry", RetryPolicy(max_attempts=9)),
        ("timeout_seconds", 5.0),
        ("overlap", "skip"),
        ("jitter_seconds", 2.5),
        ("priority", 9),
        ("description", "d"),
        ("tags", ("a", "b")),
        ("metadata", {"k": "v"}),
        ("task", TaskSpec(name="tasks.x")),
        ("end_at", datetime(2030, 1, 1, tzinfo=UTC)),
        ("start_at", datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_each_field_changes_alone(field: str, value: object) -> None:
    event = changed(created(), **{field: value})
    assert isinstance(event, JobUpdated)
    assert event.changed == (field,)
    assert getattr(event.job, field) == value


def test_a_new_schedule_or_time_zone_recomputes_the_next_run() -> None:
    first = created()
    assert first.next_run_at == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    tokyo = changed(first, timezone="Asia/Tokyo")
    assert isinstance(tokyo, JobUpdated) and tokyo.changed == ("timezone",)
    assert tokyo.next_run_at == datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    every = changed(tokyo, schedule=IntervalSchedule(every_seconds=90, anchor=NOW))
    assert every is not None and every.next_run_at == NOW + timedelta(seconds=90)
    cron = changed(first, schedule=CronSchedule(expression=" 0  3 * * * "))
    assert cron is not None and cron.job.schedule == CronSchedule(expression="0 3 * * *")
    with pytest.raises(InvalidCron):
        changed(first, schedule=CronSchedule(expression="not cron"))
    with pytest.raises(ValidationFailed) as zone:
        changed(first, timezone="Mars/Olympus")
    assert zone.value.field == "timezone"
    with pytest.raises(ValidationFailed) as window:
        changed(first, start_at=datetime(2027, 1, 2, tzinfo=UTC), end_at=datetime(2027, 1, 1, tzinfo=UTC))
    assert window.value.detail == "end_at must be after start_at"
    with pytest.raises(ValidationFailed) as ended:
        changed(first, end_at=NOW)
    assert ended.value.detail == "end_at is in the past: the job would never fire"


def test_enabled_alone_is_a_pause_or_a_resume_and_each_is_idempotent() -> None:
    first = created()
    paused = decide(first, PauseJob(), LATER)
    assert isinstance(paused, JobPaused)
    assert (paused.job.enabled, paused.next_run_at, paused.version) == (False, None, 2)
    assert decide(paused, PauseJob(), LATER) is None
    resumed = decide(paused, ResumeJob(), LATER)
    assert isinstance(resumed, JobResumed) and resumed.next_run_at == first.next_run_at
    assert decide(resumed, ResumeJob(), LATER) is None
    assert isinstance(changed(resumed, enabled=False), JobPaused)
    mixed = changed(first, enabled=False, name="n")
    assert isinstance(mixed, JobUpdated) and mixed.changed == ("name", "enabled")
    with pytest.raises(ValidationFailed):
        decide(paused, ResumeJob(require_target=True), LATER)  # nothing to run
    with pytest.raises(ValidationFailed):
        changed(paused, require_target=True, enabled=True)


def test_patches_apply_to_the_state_as_loaded() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_seconds=10, backoff="linear", jitter=0.3, max_delay_seconds=600)
    first = created(JobDraft(name="p", schedule=NIGHTLY, retry=policy, task=TaskSpec(name="a", args=(1,))))
    # Two patches of different fields, each decided on the state the other left: both survive.
    one = changed(first, retry=RetryPatch(base_delay_seconds=20))
    assert one is not None
    two = changed(one, retry=RetryPatch(max_attempts=2))
    assert two is not None and two.job.retry == msgspec.structs.replace(policy, max_attempts=2, base_delay_seconds=20)
    assert isinstance(two, JobUpdated) and two.changed == ("retry",)
    task = changed(two, task=TaskPatch(kwargs={"k": 1}))
    assert task is not None and task.job.task == TaskSpec(name="a", args=(1,), kwargs={"k": 1})
    with pytest.raises(ValidationFailed) as orphan:
        changed(task, task=TaskPatch(name=None))  # its arguments would stay without a task
    assert orphan.value.field == "task"
    with pytest.raises(ValidationFailed) as bad:
        changed(task, task=TaskPatch(name="no spaces allowed"))
    assert bad.value.field == "task"
    removed = changed(task, require_target=False, task=TaskPatch(name=None, args=(), kwargs={}))
    assert removed is not None and removed.job.task is None
    with pytest.raises(ValidationFailed):
        changed(task, require_target=True, task=TaskPatch(name=None, args=(), kwargs={}))


def test_delete_keeps_the_last_state_and_then_the_job_is_gone() -> None:
    first = created()
    deleted = decide(first, DeleteJob(), LATER)
    assert isinstance(deleted, JobDeleted)
    assert (deleted.job.name, deleted.next_run_at, deleted.version, deleted.job.updated_at) == (
        "backup",
        None,
        2,
        LATER,
    )
    for command in (DeleteJob(), PauseJob(), ChangeJob(JobChanges(name="x"))):
        with pytest.raises(JobNotFound):
            decide(deleted, command, LATER)
        with pytest.raises(JobNotFound):
            decide(None, command, LATER)
