"""Commands on jobs: validate, build the next event from the current state, append with optimistic concurrency."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import msgspec

from services.api.auth import Principal
from services.api.domain_errors import ConflictError, InvalidCronError, JobNotFoundError, ValidationFailedError
from shared.bus.job_store import ConcurrencyError, JobEventStore
from shared.contracts.jobs import JobCreated, JobDeleted, JobEvent, JobState, WebhookAdded, WebhookSpec
from shared.contracts.schedules import CronSchedule, Schedule
from shared.schedule.errors import InvalidCronExpressionError, InvalidTimezoneError
from shared.schedule.occurrences import next_after, validate_schedule

# A command whose target changed under it is re-read and retried this many times before a 409.
APPEND_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Appended:
    """An event now in the store, and the stream sequence to wait for before reading it back."""

    event: JobEvent
    sequence: int


def _checked_schedule(schedule: Schedule, timezone: str) -> Schedule:
    try:
        validate_schedule(schedule, timezone)
    except InvalidCronExpressionError as exc:
        raise InvalidCronError(str(exc)) from exc
    except InvalidTimezoneError as exc:
        raise ValidationFailedError(str(exc)) from exc
    return schedule


def _next_run(state: JobState, now: datetime) -> datetime | None:
    return next_after(state.schedule, state.timezone, now) if state.enabled else None


class JobCommands:
    def __init__(self, store: JobEventStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._clock = clock

    async def create_job(
        self,
        principal: Principal,
        *,
        account_id: UUID,
        name: str,
        cron: str,
        job_type: int,
        timezone: str,
        enabled: bool,
    ) -> Appended:
        principal.check_account(account_id)
        schedule = _checked_schedule(CronSchedule(expression=cron.strip()), timezone)
        now = self._clock()
        job_id = uuid.uuid4()
        state = JobState(
            id=job_id,
            account_id=account_id,
            name=name,
            type=job_type,
            schedule=schedule,
            timezone=timezone,
            enabled=enabled,
            created_at=now,
            updated_at=now,
        )
        event = JobCreated(
            event_id=uuid.uuid4(),
            job_id=job_id,
            account_id=account_id,
            version=1,
            occurred_at=now,
            job=state,
            next_run_at=_next_run(state, now),
        )
        return Appended(event, await self._store.append(event, 0))

    async def add_webhook(
        self,
        principal: Principal,
        *,
        job_id: UUID,
        url: str,
        method: str,
        headers: dict[str, str],
        query_params: dict[str, str] | None,
        body_template: str | None,
    ) -> Appended:
        webhook_id = uuid.uuid4()
        for _ in range(APPEND_ATTEMPTS):
            loaded = await self._store.load(job_id)
            if loaded is None or isinstance(loaded.event, JobDeleted):
                raise JobNotFoundError(f"job {job_id} not found")
            current = loaded.event.job
            principal.check_account(current.account_id)
            now = self._clock()
            webhook = WebhookSpec(
                id=webhook_id,
                url=url,
                method=method,
                headers=headers,
                query_params=query_params,
                body_template=body_template,
                created_at=now,
                updated_at=now,
            )
            state = msgspec.structs.replace(current, webhooks=(*current.webhooks, webhook), updated_at=now)
            event = WebhookAdded(
                event_id=uuid.uuid4(),
                job_id=job_id,
                account_id=current.account_id,
                version=loaded.event.version + 1,
                occurred_at=now,
                job=state,
                next_run_at=_next_run(state, now),
                webhook_id=webhook_id,
            )
            try:
                return Appended(event, await self._store.append(event, loaded.sequence))
            except ConcurrencyError:
                continue
        raise ConflictError(f"job {job_id} is being changed concurrently, try again")
