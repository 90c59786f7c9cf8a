"""Job commands on the in-memory event store: which event each command writes, access, conflicts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.api.core.api_errors import (
    ConflictError,
    DependencyUnavailableError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    InvalidCronError,
    JobNotFoundError,
    ValidationFailedError,
    WebhookNotFoundError,
)
from services.api.core.auth import Principal
from services.api.core.idempotency import checked_key, request_key
from services.api.core.job_commands import (
    MAX_WEBHOOKS_PER_JOB,
    JobChanges,
    JobCommands,
    JobDraft,
    RetryPatch,
    TaskPatch,
    WebhookChanges,
    WebhookDraft,
)
from shared.bus.job_store import ConcurrencyError, InMemoryJobEventStore, Loaded
from shared.contracts.jobs import (
    JobCreated,
    JobDeleted,
    JobEvent,
    JobPaused,
    JobResumed,
    JobUpdated,
    RetryPolicy,
    TaskSpec,
    WebhookAdded,
    WebhookRemoved,
    WebhookUpdated,
)
from shared.contracts.schedules import CronSchedule, DateSchedule, IntervalSchedule

pytestmark = pytest.mark.unit

ACCOUNT = uuid.UUID("11111111-1111-1111-1111-111111111111")
OWNER = Principal(subject="owner", accounts=frozenset({ACCOUNT}))
STRANGER = Principal(subject="stranger", accounts=frozenset({uuid.uuid4()}))
ADMIN = Principal(subject="admin", accounts=None)
START = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store() -> InMemoryJobEventStore:
    return InMemoryJobEventStore()


@pytest.fixture
def commands(store: InMemoryJobEventStore) -> JobCommands:
    return JobCommands(store, clock=Clock())


async def new_job(commands: JobCommands, cron: str = "0 2 * * *", timezone: str = "UTC") -> JobEvent:
    draft = JobDraft(name="backup", schedule=CronSchedule(expression=cron), type=1, timezone=timezone)
    appended = await commands.create_job(OWNER, account_id=ACCOUNT, draft=draft)
    return appended.event


async def test_create_validates_and_computes_the_next_run(commands: JobCommands) -> None:
    event = await new_job(commands, cron="  0   2 * * *", timezone="America/New_York")
    assert isinstance(event, JobCreated)
    assert event.version == 1
    assert event.job.schedule.expression == "0 2 * * *"  # type: ignore[union-attr]
    # 02:00 in New York on 2 March 2026 (EST, UTC-5).
    assert event.next_run_at == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    with pytest.raises(InvalidCronError):
        await new_job(commands, cron="0 25 * * *")
    with pytest.raises(ValidationFailedError):
        await new_job(commands, timezone="Europe/Atlantis")
    with pytest.raises(ForbiddenError):
        await commands.create_job(
            STRANGER, account_id=ACCOUNT, draft=JobDraft(name="n", schedule=CronSchedule(expression="* * * * *"))
        )


async def test_update_writes_only_what_changed(commands: JobCommands, store: InMemoryJobEventStore) -> None:
    created = await new_job(commands)
    renamed = (await commands.update_job(OWNER, created.job_id, JobChanges(name="nightly"))).event
    assert isinstance(renamed, JobUpdated)
    assert (renamed.changed, renamed.version, renamed.job.name) == (("name",), 2, "nightly")
    assert renamed.next_run_at == created.next_run_at

    moved = (await commands.update_job(OWNER, created.job_id, JobChanges(timezone="Asia/Tokyo"))).event
    assert isinstance(moved, JobUpdated)
    assert moved.changed == ("timezone",)
    assert moved.next_run_at == datetime(2026, 3, 1, 17, 0, tzinfo=UTC)  # 02:00 on 2 March in Tokyo

    same = await commands.update_job(OWNER, created.job_id, JobChanges(name="nightly", timezone="Asia/Tokyo"))
    assert same.event == moved
    loaded = await store.load(created.job_id)
    assert loaded is not None and loaded.event == moved

    with pytest.raises(InvalidCronError):
        await commands.update_job(OWNER, created.job_id, JobChanges(schedule=CronSchedule(expression="not cron")))
    with pytest.raises(ForbiddenError):
        await commands.update_job(STRANGER, created.job_id, JobChanges(name="mine"))
    by_admin = await commands.update_job(ADMIN, created.job_id, JobChanges(type=9))
    assert by_admin.event.job.type == 9
    with pytest.raises(JobNotFoundError):
        await commands.update_job(OWNER, uuid.uuid4(), JobChanges(name="x"))


async def test_patches_apply_to_the_job_as_loaded(commands: JobCommands) -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_seconds=10, backoff="linear", jitter=0.3, max_delay_seconds=600)
    draft = JobDraft(name="p", schedule=CronSchedule(expression="0 2 * * *"), retry=policy)
    created = (await commands.create_job(OWNER, account_id=ACCOUNT, draft=draft)).event
    # Two patches written from the same stale view of the job: each changes only its field.
    await commands.update_job(OWNER, created.job_id, JobChanges(retry=RetryPatch(base_delay_seconds=20)))
    patched = await commands.update_job(OWNER, created.job_id, JobChanges(retry=RetryPatch(max_attempts=2)))
    assert patched.event.job.retry == RetryPolicy(
        max_attempts=2, base_delay_seconds=20, backoff="linear", jitter=0.3, max_delay_seconds=600
    )
    # (The patches' own rules are tested in test_job_patches.py.) A patch's refusal reaches the api as its error.
    task = TaskSpec(name="tasks.a", args=(1,), kwargs={"k": 1})
    await commands.update_job(OWNER, created.job_id, JobChanges(task=task))
    with pytest.raises(ValidationFailedError) as refused:
        await commands.update_job(OWNER, created.job_id, JobChanges(task=TaskPatch(name=None)))
    assert (refused.value.field, refused.value.schedule_kind) == ("task", None)  # neutral: each surface names it


async def test_nothing_to_run_is_refused_where_asked_and_webhooks_come_with_the_job(commands: JobCommands) -> None:
    draft = JobDraft(name="n", schedule=CronSchedule(expression="0 2 * * *"))
    with pytest.raises(ValidationFailedError) as refused:
        await commands.create_job(OWNER, account_id=ACCOUNT, draft=draft, require_target=True)
    assert refused.value.field == "task"
    paused = (
        await commands.create_job(
            OWNER,
            account_id=ACCOUNT,
            draft=JobDraft(name="n", schedule=CronSchedule(expression="0 2 * * *"), enabled=False),
            require_target=True,
        )
    ).event
    with pytest.raises(ValidationFailedError):
        await commands.set_enabled(OWNER, paused.job_id, True, require_target=True)
    resumed = await commands.set_enabled(OWNER, paused.job_id, True)  # the other surface's document allows it
    assert resumed.event.job.enabled

    hooked = JobDraft(
        name="n", schedule=CronSchedule(expression="0 2 * * *"), webhooks=(WebhookDraft(url="https://example.com/h"),)
    )
    created = (await commands.create_job(OWNER, account_id=ACCOUNT, draft=hooked, require_target=True)).event
    assert isinstance(created, JobCreated) and created.version == 1
    assert [w.url for w in created.job.webhooks] == ["https://example.com/h"]
    bad = JobDraft(name="n", schedule=CronSchedule(expression="0 2 * * *"), webhooks=(WebhookDraft(url="ftp://x"),))
    with pytest.raises(ValidationFailedError):
        await commands.create_job(OWNER, account_id=ACCOUNT, draft=bad)


async def test_pause_and_resume_are_their_own_events_and_idempotent(commands: JobCommands) -> None:
    created = await new_job(commands)
    paused = (await commands.set_enabled(OWNER, created.job_id, False)).event
    assert isinstance(paused, JobPaused)
    assert (paused.job.enabled, paused.next_run_at) == (False, None)
    again = await commands.set_enabled(OWNER, created.job_id, False)
    assert again.event == paused
    resumed = (await commands.set_enabled(OWNER, created.job_id, True)).event
    assert isinstance(resumed, JobResumed)
    assert resumed.next_run_at is not None
    mixed = (await commands.update_job(OWNER, created.job_id, JobChanges(enabled=False, name="n"))).event
    assert isinstance(mixed, JobUpdated)
    assert set(mixed.changed) == {"enabled", "name"}


async def test_delete_keeps_the_last_state_and_then_the_job_is_gone(commands: JobCommands) -> None:
    created = await new_job(commands)
    deleted = (await commands.delete_job(OWNER, created.job_id)).event
    assert isinstance(deleted, JobDeleted)
    assert (deleted.job.name, deleted.next_run_at) == ("backup", None)
    with pytest.raises(JobNotFoundError):
        await commands.delete_job(OWNER, created.job_id)
    with pytest.raises(JobNotFoundError):
        await commands.set_enabled(OWNER, created.job_id, True)


async def test_webhook_lifecycle(commands: JobCommands) -> None:
    created = await new_job(commands)
    added = (
        await commands.add_webhook(
            OWNER,
            job_id=created.job_id,
            hook=WebhookDraft(
                url="https://example.com/a",
                method="POST",
                headers={"X-A": "1"},
                body_template="{}",
                content_type="application/json",
            ),
        )
    ).event
    assert isinstance(added, WebhookAdded)
    hook = added.job.webhooks[0]
    assert hook.id == added.webhook_id

    changed = (
        await commands.update_webhook(
            OWNER, created.job_id, hook.id, WebhookChanges(url="https://example.com/b", body_template=None)
        )
    ).event
    assert isinstance(changed, WebhookUpdated)
    assert set(changed.changed) == {"url", "body_template"}
    assert (changed.job.webhooks[0].url, changed.job.webhooks[0].body_template) == ("https://example.com/b", None)
    assert changed.job.webhooks[0].created_at == hook.created_at

    removed = (await commands.remove_webhook(OWNER, created.job_id, hook.id)).event
    assert isinstance(removed, WebhookRemoved)
    assert removed.job.webhooks == ()
    with pytest.raises(WebhookNotFoundError):
        await commands.remove_webhook(OWNER, created.job_id, hook.id)
    with pytest.raises(WebhookNotFoundError):
        await commands.update_webhook(OWNER, uuid.uuid4(), hook.id, WebhookChanges(method="GET"))


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("ftp://example.com/", {}),
        ("https:///path", {}),
        ("http://example.com:0/", {}),
        ("http://example.com:99999/", {}),
        ("https://example.com/\n", {}),
        ("https://example.com/", {"Host": "internal"}),
        ("https://example.com/", {"Webhook-Signature": "v1,forged"}),
        ("https://example.com/", {"X-Bad": "a\nb"}),
        ("https://example.com/", {"X Bad": "a"}),
    ],
)
async def test_webhook_targets_and_headers_are_checked(
    commands: JobCommands, url: str, headers: dict[str, str]
) -> None:
    created = await new_job(commands)
    with pytest.raises(ValidationFailedError):
        await commands.add_webhook(
            OWNER,
            job_id=created.job_id,
            hook=WebhookDraft(
                url=url,
                method="POST",
                headers=headers,
                body_template=None,
                content_type="application/json",
            ),
        )


class RacingStore(InMemoryJobEventStore):
    """Someone else writes to the job between every load and append, `races` times."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    async def load(self, job_id: uuid.UUID) -> Loaded | None:
        loaded = await super().load(job_id)
        if loaded is not None and self.races > 0:
            self.races -= 1
            rival = JobUpdated(
                event_id=uuid.uuid4(),
                job_id=job_id,
                account_id=loaded.event.account_id,
                version=loaded.event.version + 1,
                occurred_at=START,
                job=loaded.event.job,
                next_run_at=loaded.event.next_run_at,
                changed=(),
            )
            await self.append(rival, loaded.sequence)
        return loaded


async def test_a_lost_race_is_retried_then_a_conflict() -> None:
    store = RacingStore(races=0)
    commands = JobCommands(store, clock=Clock())
    created = await new_job(commands)

    store.races = 2
    won = await commands.update_job(OWNER, created.job_id, JobChanges(name="after two races"))
    assert won.event.job.name == "after two races"
    assert won.event.version == 4

    store.races = 3
    with pytest.raises(ConflictError):
        await commands.update_job(OWNER, created.job_id, JobChanges(name="lost"))
    loaded = await store.load(created.job_id)
    assert loaded is not None and loaded.event.job.name == "after two races"


async def test_a_job_cannot_grow_past_the_event_size_limit(commands: JobCommands) -> None:
    created = await new_job(commands)

    async def add(body: str) -> None:
        await commands.add_webhook(
            OWNER,
            job_id=created.job_id,
            hook=WebhookDraft(
                url="https://example.com/",
                method="POST",
                headers={},
                body_template=body,
                content_type="application/json",
            ),
        )

    for _ in range(7):
        await add("x" * 65536)
    with pytest.raises(ValidationFailedError, match="limit"):
        await add("x" * 65536)
    for _ in range(MAX_WEBHOOKS_PER_JOB - 7):
        await add("")
    with pytest.raises(ValidationFailedError, match="at most"):
        await add("")


async def test_other_schedule_kinds_and_jobs_that_would_never_fire(commands: JobCommands) -> None:
    every = IntervalSchedule(every_seconds=90, anchor=START)
    interval = await commands.create_job(OWNER, account_id=ACCOUNT, draft=JobDraft(name="i", schedule=every))
    assert interval.event.next_run_at == START + timedelta(seconds=90)
    # A date already past is accepted: the ticker puts its one occurrence through the job's misfire policy.
    past = await commands.create_job(
        OWNER, account_id=ACCOUNT, draft=JobDraft(name="d", schedule=DateSchedule(at=START - timedelta(days=1)))
    )
    assert (past.event.job.enabled, past.event.next_run_at) == (True, None)
    moved = await commands.update_job(
        OWNER, past.event.job_id, JobChanges(schedule=DateSchedule(at=START - timedelta(hours=1)))
    )
    assert moved.event.job.schedule == DateSchedule(at=START - timedelta(hours=1))
    # Unless the job's window leaves it out: then it never fires.
    with pytest.raises(ValidationFailedError) as error:
        await commands.create_job(
            OWNER,
            account_id=ACCOUNT,
            draft=JobDraft(name="d", schedule=DateSchedule(at=START - timedelta(days=1)), start_at=START),
        )
    assert (error.value.field, error.value.schedule_kind) == ("schedule", "date")
    # Resuming a date job whose time passed while it was paused does not run it: its time is gone.
    paused_in_past = JobDraft(name="d", schedule=DateSchedule(at=START - timedelta(days=1)), enabled=False)
    created = await commands.create_job(OWNER, account_id=ACCOUNT, draft=paused_in_past)
    with pytest.raises(ValidationFailedError):
        await commands.set_enabled(OWNER, created.event.job_id, True)
    renamed = await commands.update_job(OWNER, created.event.job_id, JobChanges(name="still paused"))
    assert renamed.event.job.name == "still paused"


# Idempotency keys on creates: a retried create answers the first job, once.

BODY = b'{"name": "backup", "schedule": "0 2 * * *"}'


def draft(name: str = "backup") -> JobDraft:
    return JobDraft(name=name, schedule=CronSchedule(expression="0 2 * * *"))


async def created_jobs(store: InMemoryJobEventStore) -> list[uuid.UUID]:
    loaded = [await store.first(job_id) for job_id in {e.job_id for e in store._events}]
    return [x.event.job_id for x in loaded if x is not None and isinstance(x.event, JobCreated)]


async def test_a_retried_create_answers_the_first_job_and_creates_nothing(
    commands: JobCommands, store: InMemoryJobEventStore
) -> None:
    key = request_key(ACCOUNT, "order-42", BODY)
    first = await commands.create_job(OWNER, account_id=ACCOUNT, draft=draft(), key=key)
    again = await commands.create_job(OWNER, account_id=ACCOUNT, draft=draft(), key=key)
    assert again == first  # the same event (the first request's timestamps) at the same sequence
    assert first.event.job_id == key.job_id
    assert await created_jobs(store) == [key.job_id]
    # Without a key, the same request is another job.
    other = await commands.create_job(OWNER, account_id=ACCOUNT, draft=draft())
    assert other.event.job_id != key.job_id
    assert len(await created_jobs(store)) == 2


async def test_a_retry_after_a_change_answers_the_job_as_it_is_now(commands: JobCommands) -> None:
    key = request_key(ACCOUNT, "k", BODY)
    first = await commands.create_job(OWNER, account_id=ACCOUNT, draft=draft(), key=key)
    await commands.update_job(OWNER, first.event.job_id, JobChanges(name="renamed"))
    again = await commands.create_job(OWNER, account_id=ACCOUNT, draft=draft(), key=key)
    assert isinstance(again.event, JobUpdated)
    assert (again.event.job_id, again.event.job.name) == (first.event.job_id, "renamed")


async def test_a_key_with_another_body_or_naming_a_deleted_job_is_refused(
    commands: JobCommands, store: InMemoryJobEventStore
) -> None:
    first = await commands.create_job(OWNER, account_id=ACCOUNT, draft=draft(), key=request_key(ACCOUNT, "k", BODY))
    with pytest.raises(IdempotencyKeyReusedError, match="different request"):
        await commands.create_job(
            OWNER, account_id=ACCOUNT, draft=draft("other"), key=request_key(ACCOUNT, "k", BODY + b" ")
        )
    await commands.delete_job(OWNER, first.event.job_id)
    with pytest.raises(IdempotencyKeyReusedError, match="deleted"):
        await commands.create_job(OWNER, account_id=ACCOUNT, draft=draft(), key=request_key(ACCOUNT, "k", BODY))
    assert await created_jobs(store) == [first.event.job_id]


async def test_a_retry_is_answered_from_the_job_not_decided_again() -> None:
    """A job whose window ends a few seconds ahead: by the retry its end has passed, which a fresh create refuses;
    the retry still answers the job that exists."""
    ending = JobDraft(name="e", schedule=CronSchedule(expression="* * * * * *"), end_at=START + timedelta(seconds=4))
    clock = Clock()
    commands = JobCommands(InMemoryJobEventStore(), clock=clock)
    key = request_key(ACCOUNT, "ending", BODY)
    first = await commands.create_job(OWNER, account_id=ACCOUNT, draft=ending, key=key)
    clock.now += timedelta(seconds=5)  # the window's end is now past
    with pytest.raises(ValidationFailedError, match="end_at"):
        await commands.create_job(OWNER, account_id=ACCOUNT, draft=ending)
    again = await commands.create_job(OWNER, account_id=ACCOUNT, draft=ending, key=key)
    assert again == first


class _WriteInFlight(InMemoryJobEventStore):
    """The store as a retry meets it while the first request's write is stored but not committed: the append is
    refused (or dropped as a duplicate) and the job cannot be read yet."""

    async def append(self, event: JobEvent, expected_sequence: int) -> int:
        raise ConcurrencyError(f"job {event.job_id}: a write with this message id is in flight")


async def test_a_retry_while_the_first_write_is_in_flight_is_told_to_retry_not_refused() -> None:
    commands = JobCommands(_WriteInFlight(), clock=Clock())
    with pytest.raises(DependencyUnavailableError, match="retry with the same key"):
        await commands.create_job(OWNER, account_id=ACCOUNT, draft=draft(), key=request_key(ACCOUNT, "k", BODY))


def test_keys_are_per_account_and_checked() -> None:
    other_account = uuid.uuid4()
    assert request_key(ACCOUNT, "k", BODY).job_id != request_key(other_account, "k", BODY).job_id
    assert request_key(ACCOUNT, "k", BODY).job_id == request_key(ACCOUNT, "k", b"{}").job_id
    assert request_key(ACCOUNT, "k", BODY).event_id != request_key(ACCOUNT, "k", b"{}").event_id
    assert checked_key(str(uuid.uuid4()))
    for bad in ("", "x" * 256, "caf\u00e9", "tab\there", "nul\x00"):
        with pytest.raises(ValidationFailedError) as refused:
            checked_key(bad)
        assert (refused.value.field, refused.value.location) == ("Idempotency-Key", "header")
