"""The api's edge of the job domain: what needs I/O or the caller (the egress check of a webhook target, access to
the account) is done here; the decisions are the domain's (shared.domain.job_decisions), run in one
load-decide-append loop that re-reads the job and decides again when someone else wrote in between."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from yarl import URL

from services.api.core.api_errors import (
    ConflictError,
    DependencyUnavailableError,
    IdempotencyKeyReusedError,
    JobNotFoundError,
    SchedulerApiError,
    ValidationFailedError,
    WebhookNotFoundError,
    translated,
)
from services.api.core.auth import Principal
from services.api.core.idempotency import RequestKey
from shared.bus.job_store import ConcurrencyError, JobEventStore, Loaded, append_to_latest, load_live
from shared.contracts.jobs import JobEvent
from shared.contracts.schedules import AfterSchedule, Schedule
from shared.delivery.egress import EgressPolicy, EgressRefusedError
from shared.domain.errors import Field
from shared.domain.job_checks import (
    MAX_EVENT_BYTES,
    MAX_WEBHOOKS_PER_JOB,
    CallbackField,
    checked_callback_url,
    checked_url,
)
from shared.domain.job_commands import (
    AddWebhook,
    ChangeJob,
    ChangeWebhook,
    CreateJob,
    DeleteJob,
    JobCommand,
    JobDraft,
    PauseJob,
    RemoveWebhook,
    ResumeJob,
    WebhookDraft,
)
from shared.domain.job_decisions import checked_changes, create_job, decide
from shared.domain.job_patches import JobChanges, RetryPatch, TaskPatch, WebhookChanges
from shared.domain.webhook_decisions import checked_webhook, checked_webhook_changes

__all__ = [
    "APPEND_ATTEMPTS",
    "MAX_EVENT_BYTES",
    "MAX_WEBHOOKS_PER_JOB",
    "Appended",
    "JobChanges",
    "JobCommands",
    "JobDraft",
    "RetryPatch",
    "TaskPatch",
    "WebhookChanges",
    "WebhookDraft",
]

# A command whose target changed under it is re-read and retried this many times before a 409.
APPEND_ATTEMPTS = 3
# A chain is at most this many jobs deep (its first job and the links after it).
MAX_CHAIN_DEPTH = 10


@dataclass(frozen=True, slots=True)
class Appended:
    """The job's latest event after a command, and the stream sequence to wait for before reading it back.

    A command that changes nothing appends nothing: `event` is then the job's current event.
    """

    event: JobEvent
    sequence: int


class JobCommands:
    """Commands on jobs for every surface: check access, pre-check what needs I/O, decide, append."""

    def __init__(
        self,
        store: JobEventStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        max_timeout_seconds: float = 120.0,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_timeout = max_timeout_seconds
        self._egress = egress

    async def _checked_target(self, url: str) -> str:
        """A valid URL whose host the egress policy allows (checked again at every delivery)."""
        with translated():
            url = checked_url(url)
        await self._allowed(url, "url")
        return url

    async def _allowed(self, url: str, field: Field) -> None:
        if self._egress is not None:
            try:
                await self._egress.check_target(URL(url).raw_host or "")
            except EgressRefusedError as exc:
                raise ValidationFailedError(f"{field}: {exc}", field=field) from None

    async def _checked_chain(self, account_id: UUID, job_id: UUID | None, schedule: Schedule) -> None:
        """A chain's link to a job of the same account that exists, without a cycle, at most MAX_CHAIN_DEPTH deep
        (the jobs above it, walked up through their links)."""
        if not isinstance(schedule, AfterSchedule):
            return
        upstream, above = schedule.job_id, 1  # the jobs above this one in the chain
        while True:
            if upstream == job_id:
                detail = f"after: job {upstream} runs after this one: that would be a cycle"
                raise ValidationFailedError(detail, "after")
            loaded = await load_live(self._store, upstream)
            if loaded is None or loaded.event.account_id != account_id:
                if above == 1:
                    raise ValidationFailedError(f"after: job {upstream} not found in this account", "after")
                return  # a link above was deleted: the chain is cut there
            link = loaded.event.job.schedule
            if not isinstance(link, AfterSchedule):
                return
            above += 1
            if above + 1 > MAX_CHAIN_DEPTH:
                raise ValidationFailedError(f"after: a chain is at most {MAX_CHAIN_DEPTH} jobs deep", "after")
            upstream = link.job_id

    async def _checked_callbacks(self, urls: dict[CallbackField, str | None]) -> None:
        """Callback URLs given: valid, and to hosts the egress policy allows (checked again at every send)."""
        for field, url in urls.items():
            with translated():
                url = checked_callback_url(url, field)
            if url is not None:
                await self._allowed(url, field)

    async def checked_webhook(
        self, url: str, headers: dict[str, str], body_template: str | None, content_type: str
    ) -> tuple[str, dict[str, str]]:
        """The URL and headers a new webhook would keep, or the ValidationFailedError adding it would raise."""
        url = await self._checked_target(url)
        draft = WebhookDraft(url=url, headers=headers, body_template=body_template, content_type=content_type)
        with translated():
            kept = checked_webhook(draft)
        return kept.url, kept.headers

    async def create_job(
        self,
        principal: Principal,
        *,
        account_id: UUID,
        draft: JobDraft,
        require_target: bool = False,
        key: RequestKey | None = None,
    ) -> Appended:
        """A new job, with its webhooks if given. `require_target`: refuse an active job with nothing to run.
        `key`: the ids an idempotency key gives; the same key again answers the job the first request created."""
        principal.check_account(account_id)
        if key is not None and (made := await self._store.first(key.job_id)) is not None:
            # A retry: answered from what the first request made, not decided again (a one-off time that has passed
            # since, or a target's name that does not resolve now, must not refuse a job that exists).
            return await self._keyed_job(key, made)
        for hook in draft.webhooks:
            await self._checked_target(hook.url)
        await self._checked_callbacks(
            {"callback_url": draft.callback_url, "failure_callback_url": draft.failure_callback_url}
        )
        await self._checked_chain(account_id, None, draft.schedule)
        command = CreateJob(
            account_id=account_id, draft=draft, require_target=require_target, max_timeout_seconds=self._max_timeout
        )
        if key is not None:
            command = dataclasses.replace(command, job_id=key.job_id, event_id=key.event_id)
        with translated():
            # Off the event loop, as every decision (see append_to_latest): computing a next run can take a while.
            event = await asyncio.to_thread(create_job, command, self._clock())
        if key is None:
            return Appended(event, await self._store.append(event, 0))
        with contextlib.suppress(ConcurrencyError):  # a request with the same key got there first
            await self._store.append(event, 0)
        return await self._keyed_job(key, await self._store.first(key.job_id))

    async def _keyed_job(self, key: RequestKey, made: Loaded | None) -> Appended:
        """The job a keyed create made (as it is now), given the first event of the key's job (`made`), whether
        this request appended it or an earlier one did. None: an append under way (a request with the same key whose
        write is stored but not yet committed: JetStream refused this one or dropped it as a duplicate)."""
        if made is None:
            raise DependencyUnavailableError(
                "a request with this Idempotency-Key is still being written; retry with the same key shortly"
            )
        if made.event.event_id != key.event_id:
            raise IdempotencyKeyReusedError("this Idempotency-Key was already used with a different request")
        latest = await load_live(self._store, key.job_id)
        if latest is None:
            raise IdempotencyKeyReusedError(
                f"the job this Idempotency-Key created ({key.job_id}) has been deleted; use a new key to create another"
            )
        return Appended(latest.event, latest.sequence)

    async def update_job(
        self, principal: Principal, job_id: UUID, changes: JobChanges, *, require_target: bool = False
    ) -> Appended:
        """Change any subset of a job's fields; a new schedule or time zone recomputes the next run.

        Patches (of the retry policy, of the task) apply to the job as loaded, so concurrent changes of different
        fields all survive. `require_target`: refuse to leave an active job with nothing to run.
        """
        with translated():
            changes = checked_changes(changes, self._max_timeout)
        given = changes.given()
        await self._checked_callbacks({f: given[f] for f in ("callback_url", "failure_callback_url") if f in given})
        if isinstance(given.get("schedule"), AfterSchedule):
            current = await load_live(self._store, job_id)
            if current is None:
                raise JobNotFoundError(f"job {job_id} not found")
            principal.check_account(current.event.account_id)
            await self._checked_chain(current.event.account_id, job_id, given["schedule"])
        command = ChangeJob(changes, require_target=require_target, max_timeout_seconds=self._max_timeout)
        return await self._change(principal, job_id, command)

    async def set_enabled(
        self, principal: Principal, job_id: UUID, enabled: bool, *, require_target: bool = False
    ) -> Appended:
        """Pause (disable) or resume (enable) a job; doing it twice changes nothing."""
        command = ResumeJob(require_target=require_target) if enabled else PauseJob()
        return await self._change(principal, job_id, command)

    async def delete_job(self, principal: Principal, job_id: UUID) -> Appended:
        """The job stops firing and leaves the read models; its events stay in the log."""
        return await self._change(principal, job_id, DeleteJob())

    async def add_webhook(self, principal: Principal, *, job_id: UUID, hook: WebhookDraft) -> Appended:
        """Attach a webhook to the job."""
        url, headers = await self.checked_webhook(hook.url, hook.headers, hook.body_template, hook.content_type)
        command = AddWebhook(dataclasses.replace(hook, url=url, headers=headers))
        return await self._change(principal, job_id, command)

    async def update_webhook(
        self, principal: Principal, job_id: UUID, webhook_id: UUID, changes: WebhookChanges
    ) -> Appended:
        """Change any subset of a webhook's fields."""
        if isinstance(changes.url, str):
            await self._checked_target(changes.url)
        with translated():
            checked_webhook_changes(changes)
        missing = WebhookNotFoundError(f"webhook {webhook_id} not found")
        return await self._change(principal, job_id, ChangeWebhook(webhook_id, changes), missing)

    async def remove_webhook(self, principal: Principal, job_id: UUID, webhook_id: UUID) -> Appended:
        """Detach a webhook from the job."""
        missing = WebhookNotFoundError(f"webhook {webhook_id} not found")
        return await self._change(principal, job_id, RemoveWebhook(webhook_id), missing)

    async def _change(
        self, principal: Principal, job_id: UUID, command: JobCommand, missing: SchedulerApiError | None = None
    ) -> Appended:
        """Load, check access, decide, append; re-read and decide again when someone else wrote in between."""

        def decided(loaded: Loaded) -> JobEvent | None:
            principal.check_account(loaded.event.account_id)
            return decide(loaded.event, command, self._clock())

        try:
            with translated():
                outcome = await append_to_latest(self._store, job_id, decided, APPEND_ATTEMPTS)
        except ConcurrencyError:
            raise ConflictError(f"job {job_id} is being changed concurrently, try again") from None
        if outcome is None:
            raise missing or JobNotFoundError(f"job {job_id} not found")
        return Appended(outcome.event or outcome.loaded.event, outcome.sequence)
