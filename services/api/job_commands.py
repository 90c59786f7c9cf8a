"""Commands on jobs: validate, build the next event from the current state, append with optimistic concurrency."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType
from yarl import URL

from services.api.core.auth import Principal
from services.api.domain_errors import (
    ConflictError,
    JobNotFoundError,
    SchedulerApiError,
    ValidationFailedError,
    WebhookNotFoundError,
)
from services.api.job_validation import (
    SCHEDULE_FIELDS,
    checked_headers,
    checked_schedule,
    checked_task_name,
    checked_timezone,
    checked_url,
)
from shared.bus.job_store import ConcurrencyError, JobEventStore, Loaded, append_to_latest
from shared.contracts.codec import encode
from shared.contracts.jobs import (
    JobCreated,
    JobDeleted,
    JobEvent,
    JobPaused,
    JobResumed,
    JobState,
    JobUpdated,
    MisfirePolicy,
    RetryPolicy,
    TaskSpec,
    WebhookAdded,
    WebhookRemoved,
    WebhookSpec,
    WebhookUpdated,
)
from shared.contracts.schedules import Schedule, kind_of
from shared.delivery.egress import EgressPolicy, EgressRefusedError
from shared.delivery.templates import TemplateError, check_template, sent_content_type
from shared.schedule.firing import next_fire, passed_date

# A command whose target changed under it is re-read and retried this many times before a 409.
APPEND_ATTEMPTS = 3
# Every job event carries the whole job, webhooks included: keep it well under NATS's 1 MiB message limit.
MAX_EVENT_BYTES = 512 * 1024
MAX_WEBHOOKS_PER_JOB = 20

E = TypeVar("E", bound=JobEvent)


@dataclass(frozen=True, slots=True)
class Appended:
    """The job's latest event after a command, and the stream sequence to wait for before reading it back.

    A command that changes nothing appends nothing: `event` is then the job's current event.
    """

    event: JobEvent
    sequence: int


@dataclass(frozen=True, slots=True)
class WebhookDraft:
    """A webhook given with a new job, as POST /webhooks takes one."""

    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    query_params: dict[str, str] | None = None
    body_template: str | None = None
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class RetryPatch:
    """Fields of a job's retry policy to change, applied to the policy the job has when the change is decided.

    `growing` is the NEXUS surface's yes/no backoff: True keeps a growing backoff (linear stays linear) or makes a
    fixed one exponential; False makes it fixed. A base delay above the policy's cap raises the cap to it (unless
    the patch sets the cap), so the delay asked for is the delay waited.
    """

    max_attempts: int | UnsetType = UNSET
    base_delay_seconds: float | UnsetType = UNSET
    backoff: Literal["exponential", "linear", "fixed"] | UnsetType = UNSET
    growing: bool | UnsetType = UNSET
    jitter: float | UnsetType = UNSET
    max_delay_seconds: float | UnsetType = UNSET

    def applied_to(self, policy: RetryPolicy) -> RetryPolicy:
        values: dict[str, Any] = {
            name: getattr(self, name)
            for name in ("max_attempts", "base_delay_seconds", "backoff", "jitter", "max_delay_seconds")
            if not isinstance(getattr(self, name), UnsetType)
        }
        if self.growing is False:
            values["backoff"] = "fixed"
        elif self.growing is True and policy.backoff == "fixed":
            values["backoff"] = "exponential"
        patched = msgspec.structs.replace(policy, **values)
        if "max_delay_seconds" not in values and patched.base_delay_seconds > patched.max_delay_seconds:
            patched = msgspec.structs.replace(patched, max_delay_seconds=patched.base_delay_seconds)
        return patched


@dataclass(frozen=True, slots=True)
class TaskPatch:
    """Fields of a job's task to change, applied to the task the job has when the change is decided.

    A `name` of None removes the task (its arguments must then be empty).
    """

    name: str | UnsetType | None = UNSET
    args: tuple[Any, ...] | UnsetType = UNSET
    kwargs: dict[str, Any] | UnsetType = UNSET

    def applied_to(self, task: TaskSpec | None) -> TaskSpec | None:
        name = task.name if task is not None and isinstance(self.name, UnsetType) else self.name
        args = (task.args if task is not None else ()) if isinstance(self.args, UnsetType) else self.args
        kwargs = (task.kwargs if task is not None else {}) if isinstance(self.kwargs, UnsetType) else self.kwargs
        if isinstance(name, UnsetType) or name is None:
            if args or kwargs:
                raise ValidationFailedError("task_args and task_kwargs need a task_name", field="task_name")
            return None
        return TaskSpec(name=name, args=tuple(args), kwargs=kwargs)


@dataclass(frozen=True, slots=True)
class JobDraft:
    """A new job, as either API describes it."""

    name: str
    schedule: Schedule
    timezone: str = "UTC"
    enabled: bool = True
    type: int = 0
    task: TaskSpec | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_seconds: float | None = None
    misfire: MisfirePolicy = field(default_factory=MisfirePolicy)
    overlap: Literal["allow", "skip", "queue_one"] = "allow"
    jitter_seconds: float = 0.0
    start_at: datetime | None = None
    end_at: datetime | None = None
    priority: int = 5
    description: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    created_by: str | None = None
    # Attached in the same event as the job, so no occurrence fires before its webhooks exist.
    webhooks: tuple[WebhookDraft, ...] = ()


@dataclass(frozen=True, slots=True)
class JobChanges:
    """Fields of a job to change (named as in JobState); UNSET leaves a field as it is."""

    name: str | UnsetType = UNSET
    schedule: Schedule | UnsetType = UNSET
    type: int | UnsetType = UNSET
    timezone: str | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    task: TaskSpec | TaskPatch | UnsetType | None = UNSET
    retry: RetryPolicy | RetryPatch | UnsetType = UNSET
    timeout_seconds: float | UnsetType | None = UNSET
    misfire: MisfirePolicy | UnsetType = UNSET
    overlap: Literal["allow", "skip", "queue_one"] | UnsetType = UNSET
    jitter_seconds: float | UnsetType = UNSET
    start_at: datetime | UnsetType | None = UNSET
    end_at: datetime | UnsetType | None = UNSET
    priority: int | UnsetType = UNSET
    description: str | UnsetType | None = UNSET
    tags: tuple[str, ...] | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET

    def given(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _JOB_FIELDS if not isinstance(getattr(self, f), UnsetType)}


# Every changeable field, in JobChanges' order (the order `changed` lists them in events).
_JOB_FIELDS = tuple(f.name for f in fields(JobChanges))


@dataclass(frozen=True, slots=True)
class WebhookChanges:
    """Fields of a webhook to change; UNSET leaves a field as it is, None clears a nullable one."""

    url: str | UnsetType = UNSET
    method: str | UnsetType = UNSET
    headers: dict[str, str] | UnsetType | None = UNSET
    query_params: dict[str, str] | UnsetType | None = UNSET
    body_template: str | UnsetType | None = UNSET
    content_type: str | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


def _next_run(state: JobState, now: datetime) -> datetime | None:
    return next_fire(state, now) if state.enabled else None


def _following(cls: type[E], loaded: Loaded, state: JobState, now: datetime, **extra: Any) -> E:
    """The event that follows `loaded`, carrying the job's new complete state."""
    return cls(
        event_id=uuid.uuid4(),
        job_id=state.id,
        account_id=state.account_id,
        version=loaded.event.version + 1,
        occurred_at=now,
        job=state,
        next_run_at=None if cls is JobDeleted else _next_run(state, now),
        **extra,
    )


def _webhook_spec(hook: WebhookDraft, webhook_id: UUID, now: datetime) -> WebhookSpec:
    return WebhookSpec(
        id=webhook_id,
        url=hook.url,
        method=hook.method,
        headers=hook.headers,
        query_params=hook.query_params,
        body_template=hook.body_template,
        content_type=hook.content_type,
        created_at=now,
        updated_at=now,
    )


def _check_body(template: str | None, content_type: str) -> None:
    if template is not None:
        try:
            check_template(template, content_type)
        except TemplateError as exc:
            raise ValidationFailedError(str(exc), field="body_template") from None


def _changed_fields(before: msgspec.Struct, after: msgspec.Struct, fields: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f for f in fields if getattr(before, f) != getattr(after, f))


def _webhook(state: JobState, webhook_id: UUID) -> WebhookSpec:
    found = next((w for w in state.webhooks if w.id == webhook_id), None)
    if found is None:
        raise _no_webhook(webhook_id)
    return found


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    if t.tzinfo is None:
        raise ValidationFailedError("a time needs its UTC offset (for example 2027-01-01T09:00:00Z)")
    if not 1970 <= t.year <= 9000:
        raise ValidationFailedError(f"{t.isoformat()} is out of range: years 1970 to 9000")
    return t.astimezone(UTC)


def _check_window(state: JobState) -> None:
    if state.start_at is not None and state.end_at is not None and state.end_at <= state.start_at:
        raise ValidationFailedError("end_at must be after start_at", field="end_at")


def _check_fires(event: JobEvent) -> None:
    """An enabled job must fire at least once more; a schedule entirely in the past is a mistake."""
    if event.job.enabled and event.next_run_at is None:
        if event.job.end_at is not None and event.job.end_at <= event.occurred_at:
            raise ValidationFailedError("end_at is in the past: the job would never fire", field="end_at")
        sets_schedule = isinstance(event, JobCreated) or (isinstance(event, JobUpdated) and "schedule" in event.changed)
        if sets_schedule and passed_date(event.job, event.occurred_at) is not None:
            return  # a date already past: the ticker puts its occurrence through the job's misfire policy
        kind = kind_of(event.job.schedule)
        detail = "scheduled_time is in the past" if kind == "date" else "the schedule never fires again"
        raise ValidationFailedError(detail, field=SCHEDULE_FIELDS[kind])


def _check_size(event: JobEvent) -> None:
    size = len(encode(event))
    if size > MAX_EVENT_BYTES:
        raise ValidationFailedError(
            f"the job would take {size} bytes, over the {MAX_EVENT_BYTES} limit: use fewer or smaller webhooks"
        )


def _check_runnable(state: JobState) -> None:
    """For surfaces without webhooks of their own (NEXUS): an active job must have a task or a webhook to run."""
    if state.enabled and state.task is None and not state.webhooks:
        raise ValidationFailedError(
            "an active job needs a task_name (or a webhook, added on /webhooks): with neither, every run fails",
            field="task_name",
            missing=True,
        )


def _no_webhook(webhook_id: UUID) -> WebhookNotFoundError:
    return WebhookNotFoundError(f"webhook {webhook_id} not found")


# What a command does with the loaded job: the event to append, or None when nothing changes.
Decision = Callable[[Loaded, datetime], JobEvent | None]


class JobCommands:
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
        url = checked_url(url)
        if self._egress is not None:
            try:
                await self._egress.check_target(URL(url).raw_host or "")
            except EgressRefusedError as exc:
                raise ValidationFailedError(f"url: {exc}", field="url") from None
        return url

    def _checked_timeout(self, timeout: float | None) -> float | None:
        if timeout is not None and timeout > self._max_timeout:
            raise ValidationFailedError(
                f"timeout_seconds may be at most {self._max_timeout:g} (SCHEDULER_MAX_DELIVERY_TIMEOUT_SECONDS)",
                field="timeout_seconds",
            )
        return timeout

    async def create_job(
        self, principal: Principal, *, account_id: UUID, draft: JobDraft, require_target: bool = False
    ) -> Appended:
        """A new job, with its webhooks if given. `require_target`: refuse an active job with nothing to run."""
        principal.check_account(account_id)
        timezone = checked_timezone(draft.timezone)
        # Off the event loop, as every schedule computation of a command (see append_to_latest).
        schedule = await asyncio.to_thread(checked_schedule, draft.schedule, timezone)
        if draft.task is not None:
            checked_task_name(draft.task.name)
        if len(draft.webhooks) > MAX_WEBHOOKS_PER_JOB:
            raise ValidationFailedError(f"a job has at most {MAX_WEBHOOKS_PER_JOB} webhooks", field="webhooks")
        now = self._clock()
        webhooks = [_webhook_spec(await self._checked(hook), uuid.uuid4(), now) for hook in draft.webhooks]
        job_id = uuid.uuid4()
        state = JobState(
            id=job_id,
            account_id=account_id,
            name=draft.name,
            type=draft.type,
            schedule=schedule,
            timezone=timezone,
            enabled=draft.enabled,
            webhooks=tuple(webhooks),
            task=draft.task,
            retry=draft.retry,
            timeout_seconds=self._checked_timeout(draft.timeout_seconds),
            misfire=draft.misfire,
            overlap=draft.overlap,
            jitter_seconds=draft.jitter_seconds,
            start_at=_utc(draft.start_at),
            end_at=_utc(draft.end_at),
            priority=draft.priority,
            description=draft.description,
            tags=draft.tags,
            metadata=draft.metadata,
            created_by=draft.created_by,
            created_at=now,
            updated_at=now,
        )
        _check_window(state)
        if require_target:
            _check_runnable(state)
        event = JobCreated(
            event_id=uuid.uuid4(),
            job_id=job_id,
            account_id=account_id,
            version=1,
            occurred_at=now,
            job=state,
            next_run_at=await asyncio.to_thread(_next_run, state, now),
        )
        _check_fires(event)
        _check_size(event)
        return Appended(event, await self._store.append(event, 0))

    async def update_job(
        self, principal: Principal, job_id: UUID, changes: JobChanges, *, require_target: bool = False
    ) -> Appended:
        """Change any subset of a job's fields; a new schedule or time zone recomputes the next run.

        Patches (of the retry policy, of the task) apply to the job as loaded, so concurrent changes of different
        fields all survive. `require_target`: refuse to leave an active job with nothing to run.
        """
        values = changes.given()
        if "timezone" in values:
            values["timezone"] = checked_timezone(values["timezone"])
        task = values.get("task")
        if isinstance(task, TaskSpec | TaskPatch) and isinstance(task.name, str):
            checked_task_name(task.name)
        if "timeout_seconds" in values:
            values["timeout_seconds"] = self._checked_timeout(values["timeout_seconds"])
        for bound in ("start_at", "end_at"):
            if bound in values:
                values[bound] = _utc(values[bound])

        def decide(loaded: Loaded, now: datetime) -> JobEvent | None:
            current = loaded.event.job
            given = dict(values)
            if isinstance(retry := given.get("retry"), RetryPatch):
                given["retry"] = retry.applied_to(current.retry)
            if isinstance(task := given.get("task"), TaskPatch):
                given["task"] = task.applied_to(current.task)
            state = msgspec.structs.replace(current, **given)
            if "schedule" in values or "timezone" in values:
                state = msgspec.structs.replace(state, schedule=checked_schedule(state.schedule, state.timezone))
            changed = _changed_fields(current, state, _JOB_FIELDS)
            if not changed:
                return None
            _check_window(state)
            if require_target and {"enabled", "task"} & set(changed):
                _check_runnable(state)
            state = msgspec.structs.replace(state, updated_at=now)
            event: JobEvent
            if changed == ("enabled",):
                event = _following(JobResumed if state.enabled else JobPaused, loaded, state, now)
            else:
                event = _following(JobUpdated, loaded, state, now, changed=changed)
            if {"schedule", "timezone", "enabled", "start_at", "end_at"} & set(changed):
                _check_fires(event)
            return event

        return await self._change(principal, job_id, decide)

    async def set_enabled(
        self, principal: Principal, job_id: UUID, enabled: bool, *, require_target: bool = False
    ) -> Appended:
        """Pause (disable) or resume (enable) a job; doing it twice changes nothing."""
        return await self.update_job(principal, job_id, JobChanges(enabled=enabled), require_target=require_target)

    async def delete_job(self, principal: Principal, job_id: UUID) -> Appended:
        """The job stops firing and leaves the read models; its events stay in the log."""

        def decide(loaded: Loaded, now: datetime) -> JobEvent:
            state = msgspec.structs.replace(loaded.event.job, updated_at=now)
            return _following(JobDeleted, loaded, state, now)

        return await self._change(principal, job_id, decide)

    async def checked_webhook(
        self, url: str, headers: dict[str, str], body_template: str | None, content_type: str
    ) -> tuple[str, dict[str, str]]:
        """The URL and headers a new webhook would keep, or the ValidationFailedError adding it would raise."""
        url = await self._checked_target(url)
        headers = checked_headers(headers)
        _check_body(body_template, sent_content_type(content_type, headers))
        return url, headers

    async def add_webhook(self, principal: Principal, *, job_id: UUID, hook: WebhookDraft) -> Appended:
        webhook_id = uuid.uuid4()
        hook = await self._checked(hook)

        def decide(loaded: Loaded, now: datetime) -> JobEvent:
            current = loaded.event.job
            if len(current.webhooks) >= MAX_WEBHOOKS_PER_JOB:
                raise ValidationFailedError(f"a job has at most {MAX_WEBHOOKS_PER_JOB} webhooks")
            webhook = _webhook_spec(hook, webhook_id, now)
            state = msgspec.structs.replace(current, webhooks=(*current.webhooks, webhook), updated_at=now)
            return _following(WebhookAdded, loaded, state, now, webhook_id=webhook_id)

        return await self._change(principal, job_id, decide)

    async def _checked(self, hook: WebhookDraft) -> WebhookDraft:
        """The webhook as it would be kept (URL and headers checked), or the ValidationFailedError it raises."""
        url, headers = await self.checked_webhook(hook.url, hook.headers, hook.body_template, hook.content_type)
        return dataclasses.replace(hook, url=url, headers=headers)

    async def update_webhook(
        self, principal: Principal, job_id: UUID, webhook_id: UUID, changes: WebhookChanges
    ) -> Appended:
        """Change any subset of a webhook's fields."""
        values: dict[str, Any] = {
            name: getattr(changes, name)
            for name in ("url", "method", "headers", "query_params", "body_template", "content_type", "enabled")
            if not isinstance(getattr(changes, name), UnsetType)
        }
        if values.get("enabled") is True:
            values["disabled_reason"] = None
        if "url" in values:
            values["url"] = await self._checked_target(values["url"])
        if "headers" in values:
            values["headers"] = checked_headers(values["headers"] or {})

        def decide(loaded: Loaded, now: datetime) -> JobEvent | None:
            current = loaded.event.job
            before = _webhook(current, webhook_id)
            after = msgspec.structs.replace(before, **values)
            changed = _changed_fields(before, after, tuple(values))
            if not changed:
                return None
            if {"body_template", "content_type", "headers"} & set(changed):
                _check_body(after.body_template, sent_content_type(after.content_type, after.headers))
            after = msgspec.structs.replace(after, updated_at=now)
            webhooks = tuple(after if w.id == webhook_id else w for w in current.webhooks)
            state = msgspec.structs.replace(current, webhooks=webhooks, updated_at=now)
            return _following(WebhookUpdated, loaded, state, now, webhook_id=webhook_id, changed=changed)

        return await self._change(principal, job_id, decide, missing=_no_webhook(webhook_id))

    async def remove_webhook(self, principal: Principal, job_id: UUID, webhook_id: UUID) -> Appended:
        def decide(loaded: Loaded, now: datetime) -> JobEvent:
            current = loaded.event.job
            _webhook(current, webhook_id)
            webhooks = tuple(w for w in current.webhooks if w.id != webhook_id)
            state = msgspec.structs.replace(current, webhooks=webhooks, updated_at=now)
            return _following(WebhookRemoved, loaded, state, now, webhook_id=webhook_id)

        return await self._change(principal, job_id, decide, missing=_no_webhook(webhook_id))

    async def _change(
        self, principal: Principal, job_id: UUID, decide: Decision, missing: SchedulerApiError | None = None
    ) -> Appended:
        """Load, check access, decide, append; re-read and retry when someone else wrote in between."""

        def checked(loaded: Loaded) -> JobEvent | None:
            principal.check_account(loaded.event.account_id)
            event = decide(loaded, self._clock())
            if event is not None:
                _check_size(event)
            return event

        try:
            outcome = await append_to_latest(self._store, job_id, checked, APPEND_ATTEMPTS)
        except ConcurrencyError:
            raise ConflictError(f"job {job_id} is being changed concurrently, try again") from None
        if outcome is None:
            raise missing or JobNotFoundError(f"job {job_id} not found")
        return Appended(outcome.event or outcome.loaded.event, outcome.sequence)
