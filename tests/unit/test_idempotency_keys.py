"""Idempotency keys on creates, on the in-memory event store: a retried create answers the first job, once."""

from __future__ import annotations

import uuid

import pytest

from services.api.core.api_errors import IdempotencyKeyReusedError, ValidationFailedError
from services.api.core.idempotency import checked_key, request_key
from services.api.core.job_commands import JobChanges, JobCommands, JobDraft
from shared.bus.job_store import InMemoryJobEventStore
from shared.contracts.jobs import JobCreated, JobUpdated
from shared.contracts.schedules import CronSchedule
from tests.unit.test_job_commands import ACCOUNT, OWNER, Clock

pytestmark = pytest.mark.unit

BODY = b'{"name": "backup", "schedule": "0 2 * * *"}'


@pytest.fixture
def store() -> InMemoryJobEventStore:
    return InMemoryJobEventStore()


@pytest.fixture
def commands(store: InMemoryJobEventStore) -> JobCommands:
    return JobCommands(store, clock=Clock())


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
