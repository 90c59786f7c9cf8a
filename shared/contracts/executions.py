"""Execution events: the EXECUTIONS stream. One occurrence is (job id, nominal fire time)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypedDict
from uuid import UUID

import msgspec

from shared.contracts.backfills import (
    BackfillCancelled,
    BackfillCompleted,
    BackfillEvent,
    BackfillProgressed,
    BackfillRequested,
)
from shared.contracts.callbacks import CallbackDelivered, CallbackFailed, CallbackRequested
from shared.contracts.execution_envelope import ExecutionEnvelope
from shared.contracts.jobs import FlowControl, JobState, RetryPolicy, TaskSpec, WebhookSpec

_EXECUTION_NAMESPACE = uuid.UUID("5b0d3f5e-6f43-4c8e-9a0e-2f4f1b8c7d21")


def occurrence_id(job_id: UUID, nominal_time: datetime) -> str:
    """The stable identity of one occurrence; also the `webhook-id` receivers see."""
    stamp = nominal_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{job_id}_{stamp}"


def nominal_time_of(occurrence: str) -> datetime | None:
    """The nominal time `occurrence` (an occurrence_id) was made from; None if it is not one."""
    stamp = occurrence[occurrence.rfind("_") + 1 :]  # 20260101T000000.000000Z
    if len(stamp) != 23 or stamp[8] != "T" or stamp[15] != "." or stamp[22] != "Z":
        return None
    try:
        return datetime.fromisoformat(stamp)  # C, unlike strptime; the checks above keep it to this one form
    except ValueError:
        return None


def execution_id(occurrence: str, webhook_id: UUID | None, attempt: int) -> UUID:
    """Deterministic id of one delivery attempt, so a repeated publish maps onto the same record."""
    return uuid.uuid5(_EXECUTION_NAMESPACE, f"{occurrence}|{webhook_id or '-'}|{attempt}")


def missed_execution_id(occurrence: str) -> UUID:
    """Deterministic id of the record of an occurrence that did not fire."""
    return uuid.uuid5(_EXECUTION_NAMESPACE, f"{occurrence}|missed")


class Upstream(msgspec.Struct, frozen=True, kw_only=True):
    """What a chained job's occurrence followed: the upstream job's execution and how it ended (`status` success or
    dead_letter), its answer's code and body (truncated), for the chained job's body template."""

    job_id: UUID
    occurrence_id: str
    execution_id: UUID
    status: str
    response_code: int | None = None
    response_body: str | None = None
    # Why a dead-lettered upstream execution failed.
    error: str | None = None


class ExecutionRequested(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """An occurrence is due (the ticker), or was asked for now (`manual`, the api). Carries a snapshot of the
    target, a webhook or a task, so delivery needs no look-up.

    `job_version` is the job version it fired from; `next_run_at` the job's following due time.
    """

    nominal_time: datetime
    job_version: int
    job_name: str
    webhook: WebhookSpec | None
    task: TaskSpec | None = None
    priority: int = 5
    manual: bool = False
    next_run_at: datetime | None
    # The job's policies as they were when the occurrence fired, so a retry needs no look-up.
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    timeout_seconds: float | None = None
    # An operator asked for this attempt again after the occurrence was dead-lettered.
    redrive: bool = False
    # The job's overlap policy when the occurrence fired ("allow", "skip", "queue_one").
    overlap: str = "allow"
    # When to deliver: the nominal time plus the job's jitter. The ticker publishes up to a short lead before it
    # and the dispatcher waits for it. None (manual runs, retries, re-drives, older events): at once.
    fire_at: datetime | None = None
    # Where the outcome of each attempt, and the dead letter of the occurrence, are sent (the job's, when it fired).
    callback_url: str | None = None
    failure_callback_url: str | None = None
    # The job's flow control when it fired (a webhook delivery waits while its key is at a limit).
    flow_control: FlowControl | None = None
    # For an occurrence of a chained job: the upstream execution whose end fired it.
    upstream: Upstream | None = None
    # For an occurrence a backfill ran: that backfill (its later attempts keep it).
    backfill_id: UUID | None = None

    def next_attempt(
        self, occurred_at: datetime, *, redrive: bool = False, attempt: int | None = None
    ) -> ExecutionRequested:
        """The request for the following attempt (or attempt `attempt`) of the same occurrence and target."""
        attempt = self.attempt + 1 if attempt is None else attempt
        webhook_id = self.webhook.id if self.webhook is not None else None
        return msgspec.structs.replace(
            self,
            execution_id=execution_id(self.occurrence_id, webhook_id, attempt),
            attempt=attempt,
            occurred_at=occurred_at,
            redrive=redrive,
            fire_at=None,
        )


class ExecutionWaiting(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """`request` found its flow-control key at a limit (`reason`: parallelism or rate) and waits its turn on the
    dispatchers' waiting consumer instead of the requested one (so waiting deliveries never hold up others)."""

    key: str
    reason: str
    request: ExecutionRequested


class ExecutionStarted(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """An attempt is running: a task a worker took, or a webhook delivery still running after a threshold.

    Since schema version 2 a quick webhook attempt has no ExecutionStarted: its result, which carries `started_at`
    and `worker_id`, is its only event after the request.
    """

    worker_id: str
    started_at: datetime


class ExecutionSucceeded(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """The receiver answered 2xx, or the task returned (`result`, any JSON value)."""

    worker_id: str
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    response_code: int | None = None
    response_body: str | None = None
    result: Any = None


class ExecutionFailed(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """The attempt failed: a non-2xx answer, a network error, or (timed_out) no answer in time."""

    worker_id: str
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    error: str
    timed_out: bool = False
    response_code: int | None = None
    response_body: str | None = None
    traceback: str | None = None


class ExecutionRetryScheduled(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """Attempt `attempt` failed and the next one is due at `retry_at` (a durable timer the ticker holds)."""

    retry_at: datetime
    delay_seconds: float
    next_execution_id: UUID
    reason: str


class ExecutionDeadLettered(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """Attempt `attempt` was the last one the policy allows, or one that cannot succeed; an operator may re-drive."""

    reason: str


class WebhookDisabledByReceiver(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """The receiver answered 410 Gone: the webhook is switched off and not called again."""

    webhook_id: UUID
    reason: str


class ExecutionMissed(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """An occurrence fell due while no ticker was looking and the job's misfire policy did not fire it.

    `more_missed`: more occurrences of the job were missed in the same stretch than are recorded one by one
    (a cap keeps a long outage of a frequent job from flooding the stream); `reason` gives the stretch.
    """

    nominal_time: datetime
    job_name: str
    policy: str
    reason: str
    more_missed: bool = False


class ExecutionSkipped(ExecutionEnvelope, frozen=True, kw_only=True, tag=True):
    """The job's overlap policy kept this execution from running: the previous occurrence was still running
    (`skip`), or one was already waiting behind it (`queue_one`)."""

    reason: str


# The events about one attempt of an occurrence (each carries its execution id).
AttemptEvent = (
    ExecutionRequested
    | ExecutionStarted
    | ExecutionSucceeded
    | ExecutionFailed
    | ExecutionRetryScheduled
    | ExecutionDeadLettered
    | WebhookDisabledByReceiver
    | ExecutionMissed
    | ExecutionSkipped
    | ExecutionWaiting
    | CallbackRequested
    | CallbackDelivered
    | CallbackFailed
)

# Everything the EXECUTIONS stream holds: attempts' events, and backfills'.
ExecutionEvent = AttemptEvent | BackfillEvent

# The subject kinds (<ns>.executions.<kind>.<account>.<job>) each event type is published under. A failure that
# timed out goes under `timed_out`, so subscribers can follow timeouts alone.
SUBJECT_KINDS: dict[type[msgspec.Struct], tuple[str, ...]] = {
    ExecutionRequested: ("requested",),
    ExecutionStarted: ("started",),
    ExecutionSucceeded: ("succeeded",),
    ExecutionFailed: ("failed", "timed_out"),
    ExecutionRetryScheduled: ("retry_scheduled",),
    ExecutionDeadLettered: ("dead_lettered",),
    WebhookDisabledByReceiver: ("webhook_disabled",),
    ExecutionMissed: ("missed",),
    ExecutionSkipped: ("skipped",),
    ExecutionWaiting: ("waiting",),
    CallbackRequested: ("callback",),
    CallbackDelivered: ("callback_delivered",),
    CallbackFailed: ("callback_failed",),
    BackfillRequested: ("backfill",),
    BackfillProgressed: ("backfill",),
    BackfillCompleted: ("backfill",),
    BackfillCancelled: ("backfill",),
}


def has_target(job: JobState) -> bool:
    """Whether an occurrence of `job` has something to run: an enabled webhook, or a task."""
    return job.task is not None or any(w.enabled for w in job.webhooks)


def occurrence_requests(
    job: JobState,
    *,
    job_version: int,
    nominal_time: datetime,
    occurred_at: datetime,
    next_run_at: datetime | None,
    manual: bool = False,
    task: TaskSpec | None = None,
    fire_at: datetime | None = None,
    upstream: Upstream | None = None,
    backfill_id: UUID | None = None,
) -> list[ExecutionRequested]:
    """One ExecutionRequested per target of the occurrence: each webhook, and the task (or `task`, overriding it).

    A job with neither still gets one request, which the dispatcher records as failed with the reason.
    """
    occ = occurrence_id(job.id, nominal_time)
    task = task or job.task
    targets: list[tuple[WebhookSpec | None, TaskSpec | None]] = [(w, None) for w in job.webhooks if w.enabled]
    if task is not None or not targets:
        targets.append((None, task))
    return [
        ExecutionRequested(
            execution_id=execution_id(occ, webhook.id if webhook else None, 1),
            occurrence_id=occ,
            job_id=job.id,
            account_id=job.account_id,
            occurred_at=occurred_at,
            nominal_time=nominal_time,
            job_version=job_version,
            job_name=job.name,
            webhook=webhook,
            task=target_task,
            priority=job.priority,
            manual=manual,
            next_run_at=next_run_at,
            retry=job.retry,
            timeout_seconds=job.timeout_seconds,
            overlap=job.overlap,
            fire_at=fire_at,
            callback_url=job.callback_url,
            failure_callback_url=job.failure_callback_url,
            flow_control=job.flow_control,
            upstream=upstream,
            backfill_id=backfill_id,
        )
        for webhook, target_task in targets
    ]


class ResultEnvelope(TypedDict):
    """The fields every started/succeeded/failed event copies from its request."""

    execution_id: UUID
    occurrence_id: str
    job_id: UUID
    account_id: UUID
    attempt: int


def envelope_of(request: ExecutionEnvelope) -> ResultEnvelope:
    """The fields an event about `request`'s attempt copies from it."""
    return ResultEnvelope(
        execution_id=request.execution_id,
        occurrence_id=request.occurrence_id,
        job_id=request.job_id,
        account_id=request.account_id,
        attempt=request.attempt,
    )
