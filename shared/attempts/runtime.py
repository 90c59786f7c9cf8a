"""Running one attempt of a request with an executor, and recording it: started, the result or the failure, and
what follows a failure (the next attempt, a dead letter, a webhook switched off), decided by the pure rules of
`shared.domain.attempt_outcomes`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from shared.attempts.callbacks import failure_callback, result_callback
from shared.attempts.executor import Executor
from shared.attempts.recorder import AttemptRecorder
from shared.contracts.executions import (
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionRequested,
    ExecutionRetryScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    envelope_of,
)
from shared.contracts.timers import RetryTimer
from shared.domain.attempt_outcomes import (
    AttemptFailed,
    AttemptOutcome,
    AttemptSucceeded,
    Retry,
    after_failure,
    fate_of,
)
from shared.observability.logs import execution_fields
from shared.observability.metrics import DEAD_LETTERS, RETRIES_SCHEDULED, SKIPPED_BY_OVERLAP

log = logging.getLogger(__name__)

GONE_REASON = "the receiver answered 410 Gone; the webhook is disabled"


def utc_now() -> datetime:
    return datetime.now(UTC)


class AttemptRuntime:
    """Runs attempts for one process (`worker_id` names it in the events) and records them with `recorder`.

    `started_after_seconds`: an attempt of an executor that does not record `started` first (a webhook) publishes
    ExecutionStarted only if it is still running after this long; a quicker one is recorded by its result alone,
    which carries `started_at` (event schema version 2). 0 publishes it for every attempt, while the attempt runs.
    """

    def __init__(
        self,
        recorder: AttemptRecorder,
        worker_id: str,
        clock: Callable[[], datetime] = utc_now,
        *,
        started_after_seconds: float = 0.0,
    ) -> None:
        self._recorder = recorder
        self._worker_id = worker_id
        self._now = clock
        self._started_after = started_after_seconds

    async def run(self, request: ExecutionRequested, executor: Executor) -> None:
        """Run one attempt and record it; returns once everything it leads to is recorded (then ack)."""
        started_at = self._now()

        def started() -> ExecutionStarted:  # built only for an attempt that publishes it
            return ExecutionStarted(
                **envelope_of(request), occurred_at=started_at, worker_id=self._worker_id, started_at=started_at
            )

        if executor.records_started_first:
            await self._recorder.started(started())
            outcome = await executor.execute(request, started_at)
        else:
            outcome = await self._run_then_started(executor.execute(request, started_at), started)
        finished_at = self._now()
        ended: dict[str, Any] = {
            "occurred_at": finished_at,
            "worker_id": self._worker_id,
            "started_at": started_at,
            "finished_at": finished_at,
            "duration_ms": outcome.duration_ms,
            "response_code": outcome.response_code,
            "response_body": outcome.response_body,
        }
        if isinstance(outcome, AttemptSucceeded):
            succeeded = ExecutionSucceeded(**envelope_of(request), **ended, result=outcome.result)
            await self._recorder.succeeded(succeeded)
            if (callback := result_callback(request, succeeded, None)) is not None:
                await self._recorder.callback(callback)
            return
        failed = ExecutionFailed(
            **envelope_of(request),
            **ended,
            error=outcome.error,
            timed_out=outcome.timed_out,
            traceback=outcome.traceback,
        )
        await self._failed(request, outcome, failed, finished_at)

    async def _run_then_started(
        self, attempt: Awaitable[AttemptOutcome], started: Callable[[], ExecutionStarted]
    ) -> AttemptOutcome:
        """Run `attempt`, recording `started` beside it once it has run for the threshold (at once with none). The
        result is recorded only once `started` is stored, so the two stay in order in the stream; a `started` that
        could not be stored raises once the attempt has ended (the request goes back, the attempt repeats under the
        same ids)."""
        recording: list[asyncio.Future[None]] = []

        def record() -> None:
            recording.append(asyncio.ensure_future(self._recorder.started(started())))

        if self._started_after <= 0:
            record()
            timer = None
        else:  # a timer, not a task per attempt: most attempts end well before it
            timer = asyncio.get_running_loop().call_later(self._started_after, record)
        try:
            return await attempt
        finally:
            if timer is not None:
                timer.cancel()
            if recording:
                await recording[0]

    async def _failed(
        self, request: ExecutionRequested, outcome: AttemptFailed, failed: ExecutionFailed, now: datetime
    ) -> None:
        log.info("attempt failed: %s", outcome.error, extra=execution_fields(request))
        fate = fate_of(request, outcome, now)
        if fate.disable_webhook and request.webhook is not None:
            await self._recorder.webhook_gone(request, request.webhook.id, GONE_REASON, now)
        await self._recorder.failed(failed)
        next_step = after_failure(request, fate, now)
        retry_at = next_step.due_at if isinstance(next_step, Retry) else None
        if isinstance(next_step, Retry):
            scheduled = ExecutionRetryScheduled(
                **envelope_of(request),
                occurred_at=now,
                retry_at=next_step.due_at,
                delay_seconds=next_step.delay_seconds,
                next_execution_id=next_step.request.execution_id,
                reason=failed.error,
            )
            await self._recorder.retry_scheduled(
                RetryTimer(due_at=next_step.due_at, request=next_step.request), scheduled
            )
            RETRIES_SCHEDULED.inc()
        elif next_step is not None:
            await self._recorder.dead_lettered(
                ExecutionDeadLettered(**envelope_of(request), occurred_at=now, reason=failed.error)
            )
            DEAD_LETTERS.inc()
        # The outcome's callback, then the dead letter's: each once what it reports is recorded.
        if (callback := result_callback(request, failed, retry_at)) is not None:
            await self._recorder.callback(callback)
        dead = next_step is not None and retry_at is None
        if dead and (callback := failure_callback(request, now, failed.error)) is not None:
            await self._recorder.callback(callback)

    async def skip(self, request: ExecutionRequested, reason: str) -> None:
        """Record that `request` does not run, saying why (withdrawn, nothing to deliver to)."""
        await self._recorder.skipped(ExecutionSkipped(**envelope_of(request), occurred_at=self._now(), reason=reason))

    async def skip_by_overlap(self, request: ExecutionRequested, reason: str) -> None:
        """Record that the job's overlap policy kept `request` from running."""
        await self.skip(request, reason)
        SKIPPED_BY_OVERLAP.inc()
