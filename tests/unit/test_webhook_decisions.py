"""Decisions about a job's webhooks: add, change, remove, not found, and the 410 path's disable; and the one
load-decide-append loop the decisions run in, on the in-memory job store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.bus.job_store import InMemoryJobEventStore, Loaded, append_to_latest
from shared.contracts.jobs import JobCreated, JobEvent, WebhookAdded, WebhookDisabled, WebhookRemoved, WebhookUpdated
from shared.contracts.schedules import CronSchedule
from shared.domain.errors import ValidationFailed, WebhookNotFound
from shared.domain.job_checks import MAX_WEBHOOKS_PER_JOB
from shared.domain.job_commands import (
    AddWebhook,
    ChangeJob,
    ChangeWebhook,
    CreateJob,
    DisableWebhook,
    JobCommand,
    JobDraft,
    PauseJob,
    RemoveWebhook,
    WebhookDraft,
)
from shared.domain.job_decisions import decide
from shared.domain.job_patches import JobChanges, RetryPatch, WebhookChanges

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)
HOOK = WebhookDraft(url="https://example.com/a", headers={"X-A": "1"}, body_template="{}")


def with_hook() -> tuple[WebhookAdded, uuid.UUID]:
    draft = JobDraft(name="j", schedule=CronSchedule(expression="0 2 * * *"))
    job = decide(None, CreateJob(account_id=uuid.uuid4(), draft=draft), NOW)
    assert job is not None
    added = decide(job, AddWebhook(HOOK), LATER)
    assert isinstance(added, WebhookAdded)
    return added, added.webhook_id


def test_add_attaches_the_webhook_up_to_the_limit() -> None:
    added, hook_id = with_hook()
    (hook,) = added.job.webhooks
    assert (hook.id, hook.url, hook.headers, hook.created_at, hook.enabled) == (
        hook_id,
        "https://example.com/a",
        {"X-A": "1"},
        LATER,
        True,
    )
    assert (added.version, added.next_run_at, added.job.updated_at) == (2, datetime(2026, 3, 2, 2, tzinfo=UTC), LATER)
    given = uuid.uuid4()
    assert decide(added, AddWebhook(HOOK, webhook_id=given), LATER).job.webhooks[-1].id == given  # type: ignore[union-attr]
    latest: JobEvent = added
    for _ in range(MAX_WEBHOOKS_PER_JOB - 1):
        latest = decide(latest, AddWebhook(HOOK), LATER)  # type: ignore[assignment]
    with pytest.raises(ValidationFailed, match="at most"):
        decide(latest, AddWebhook(HOOK), LATER)


@pytest.mark.parametrize(
    ("draft", "field"),
    [
        (WebhookDraft(url="ftp://example.com/"), "url"),
        (WebhookDraft(url="http://example.com:0/"), "url"),
        (WebhookDraft(url="https://example.com/", headers={"Host": "internal"}), "headers"),
        (WebhookDraft(url="https://example.com/", headers={"X-Bad": "a\nb"}), "headers"),
        (WebhookDraft(url="https://example.com/", body_template="{{#a}}"), "body_template"),
    ],
)
def test_a_bad_webhook_is_refused_on_its_field(draft: WebhookDraft, field: str) -> None:
    added, _ = with_hook()
    with pytest.raises(ValidationFailed) as error:
        decide(added, AddWebhook(draft), LATER)
    assert error.value.field == field


def test_change_writes_only_what_changed() -> None:
    added, hook_id = with_hook()
    changed = decide(
        added, ChangeWebhook(hook_id, WebhookChanges(url="https://example.com/b", body_template=None)), LATER
    )
    assert isinstance(changed, WebhookUpdated)
    assert (changed.changed, changed.webhook_id) == (("url", "body_template"), hook_id)
    (hook,) = changed.job.webhooks
    assert (hook.url, hook.body_template, hook.created_at, hook.updated_at) == (
        "https://example.com/b",
        None,
        LATER,
        LATER,
    )
    assert decide(changed, ChangeWebhook(hook_id, WebhookChanges(url="https://example.com/b")), LATER) is None
    cleared = decide(changed, ChangeWebhook(hook_id, WebhookChanges(headers=None)), LATER)
    assert cleared is not None and cleared.job.webhooks[0].headers == {}
    with pytest.raises(ValidationFailed) as body:
        decide(changed, ChangeWebhook(hook_id, WebhookChanges(body_template="{{#a}}")), LATER)
    assert body.value.field == "body_template"
    with pytest.raises(WebhookNotFound):
        decide(changed, ChangeWebhook(uuid.uuid4(), WebhookChanges(method="GET")), LATER)


def test_remove_and_not_found() -> None:
    added, hook_id = with_hook()
    removed = decide(added, RemoveWebhook(hook_id), LATER)
    assert isinstance(removed, WebhookRemoved)
    assert removed.job.webhooks == ()
    with pytest.raises(WebhookNotFound, match=str(hook_id)):
        decide(removed, RemoveWebhook(hook_id), LATER)
    for command in (RemoveWebhook(hook_id), ChangeWebhook(hook_id, WebhookChanges(method="GET"))):
        with pytest.raises(WebhookNotFound):
            decide(None, command, LATER)


def test_disable_is_idempotent_deterministic_and_keeps_the_next_run() -> None:
    added, hook_id = with_hook()
    paused = decide(added, PauseJob(), LATER)
    assert paused is not None
    execution = uuid.uuid4()
    command = DisableWebhook(webhook_id=hook_id, execution_id=execution, reason="410 Gone")
    for latest in (added, paused):
        off = decide(latest, command, LATER)
        assert isinstance(off, WebhookDisabled)
        assert off.event_id == uuid.uuid5(execution, "webhook-disabled")
        assert (off.next_run_at, off.version, off.reason) == (latest.next_run_at, latest.version + 1, "410 Gone")
        (hook,) = off.job.webhooks
        assert (hook.enabled, hook.disabled_reason, hook.updated_at) == (False, "410 Gone", LATER)
        assert decide(off, command, LATER) is None  # already off
        again = decide(off, ChangeWebhook(hook_id, WebhookChanges(enabled=True)), LATER)
        assert isinstance(again, WebhookUpdated) and again.changed == ("enabled", "disabled_reason")
        assert (again.job.webhooks[0].enabled, again.job.webhooks[0].disabled_reason) == (True, None)
    removed = decide(added, RemoveWebhook(hook_id), LATER)
    assert removed is not None and decide(removed, command, LATER) is None


class RivalStore(InMemoryJobEventStore):
    """Someone else decides `rival` on the job and appends it between the first load and its append."""

    def __init__(self, rival: JobCommand) -> None:
        super().__init__()
        self.rival: JobCommand | None = rival

    async def load(self, job_id: uuid.UUID) -> Loaded | None:
        loaded = await super().load(job_id)
        if loaded is not None and self.rival is not None:
            other = decide(loaded.event, self.rival, LATER)
            assert other is not None
            await self.append(other, loaded.sequence)
            self.rival = None
        return loaded


async def test_the_loop_decides_again_on_the_state_someone_else_wrote() -> None:
    """Two patches of different fields decided from the same view: the loser re-reads, decides on the winner's
    state, and both changes survive."""
    store = RivalStore(rival=ChangeJob(JobChanges(retry=RetryPatch(base_delay_seconds=5))))
    draft = JobDraft(name="j", schedule=CronSchedule(expression="0 2 * * *"))
    created = decide(None, CreateJob(account_id=uuid.uuid4(), draft=draft), NOW)
    assert isinstance(created, JobCreated)
    await store.append(created, 0)
    mine = ChangeJob(JobChanges(retry=RetryPatch(max_attempts=7)))

    outcome = await append_to_latest(store, created.job_id, lambda loaded: decide(loaded.event, mine, LATER), 3)
    assert outcome is not None and outcome.event is not None
    retry = outcome.event.job.retry
    assert (outcome.event.version, retry.max_attempts, retry.base_delay_seconds) == (3, 7, 5)
    loaded = await store.load(created.job_id)
    assert loaded is not None and loaded.event == outcome.event
