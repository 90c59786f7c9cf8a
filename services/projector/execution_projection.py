"""Applies EXECUTIONS events to the executions table and the jobs' last/next run times."""

from __future__ import annotations

from typing import Any

from services.projector.batched_writes import Step, Write, apply_steps
from shared.contracts.executions import (
    ExecutionDeadLettered,
    ExecutionEvent,
    ExecutionFailed,
    ExecutionMissed,
    ExecutionRequested,
    ExecutionRetryScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    WebhookDisabledByReceiver,
)
from shared.db.pool import DbConnection, without_nul

_INSERT_REQUESTED = """
INSERT INTO executions (
    id, occurrence_id, job_id, account_id, webhook_id, nominal_time, status, attempt, created_at, number, manual,
    redrive, timeout_seconds
)
VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $11, $12)
ON CONFLICT DO NOTHING
"""

_SKIPPED = """
UPDATE executions SET status = 'skipped', error = $2, finished_at = $3 WHERE id = $1 AND status = 'queued'
"""

# An occurrence published before a crash can be found missed by the ticker that takes over from an older
# watermark: it ran, so it is not recorded as missed.
_INSERT_MISSED = """
INSERT INTO executions (
    id, occurrence_id, job_id, account_id, webhook_id, nominal_time, status, attempt, created_at, number, manual,
    redrive, error
)
SELECT $1, $2, $3, $4, NULL, $5, 'missed', $6, $7, $8, false, false, $9
WHERE NOT EXISTS (SELECT 1 FROM executions WHERE occurrence_id = $2)
ON CONFLICT DO NOTHING
"""

_ADVANCE_JOB = """
INSERT INTO job_runs (job_id, last_run_at, next_run_at, job_version, last_scheduled_at) VALUES ($1, $2, $3, $4, $2)
ON CONFLICT (job_id) DO UPDATE SET
    last_run_at = GREATEST(job_runs.last_run_at, EXCLUDED.last_run_at), next_run_at = EXCLUDED.next_run_at,
    job_version = EXCLUDED.job_version, last_scheduled_at = EXCLUDED.last_scheduled_at
WHERE job_runs.last_scheduled_at IS NULL OR job_runs.last_scheduled_at < EXCLUDED.last_scheduled_at
"""

# A run on demand moves only last_run_at: with job_version 0 a new row leaves next_run_at to the jobs table.
_RAN_ON_DEMAND = """
INSERT INTO job_runs (job_id, last_run_at, next_run_at, job_version) VALUES ($1, $2, NULL, 0)
ON CONFLICT (job_id) DO UPDATE SET last_run_at = EXCLUDED.last_run_at
WHERE job_runs.last_run_at < EXCLUDED.last_run_at
"""

_RETRY_SCHEDULED = "UPDATE executions SET retry_at = $2 WHERE id = $1"

# A re-driven occurrence leaves the dead-letter list: its last attempt is no longer waiting for anyone.
_REDRIVEN = """
UPDATE executions SET status = 'failure'
WHERE occurrence_id = $1 AND webhook_id IS NOT DISTINCT FROM $2 AND attempt < $3 AND status = 'dead_letter'
"""

_DEAD_LETTERED = """
UPDATE executions SET status = 'dead_letter', dead_lettered_at = $2
WHERE id = $1 AND status IN ('failure', 'timed_out')
"""

_STARTED = """
UPDATE executions SET status = 'running', started_at = $2, worker_id = $3
WHERE id = $1 AND status = 'queued'
"""

_FINISHED = """
UPDATE executions SET status = $2, started_at = COALESCE(started_at, $3), finished_at = $4, duration_ms = $5,
    worker_id = $6, response_code = $7, response_body = $8, error = $9, result = $10, traceback = $11
WHERE id = $1 AND status IN ('queued', 'running')
"""


# Where each event sits in an execution's life (see batched_writes).
REQUESTED, STARTED, FINISHED, RETRY_SCHEDULED, DEAD_LETTERED = range(5)


def execution_step(event: ExecutionEvent, sequence: int) -> Step | None:
    """The writes of one execution transition; transitions never move a finished execution back.

    An execution's number is the stream sequence of its ExecutionRequested.
    """
    if isinstance(event, ExecutionRequested):
        webhook_id = event.webhook.id if event.webhook else None
        writes = [
            Write(
                _INSERT_REQUESTED,
                (
                    event.execution_id,
                    event.occurrence_id,
                    event.job_id,
                    event.account_id,
                    webhook_id,
                    event.nominal_time,
                    event.attempt,
                    event.occurred_at,
                    sequence,
                    event.manual,
                    event.redrive,
                    event.timeout_seconds,
                ),
            )
        ]
        if event.redrive:
            # Touches the earlier attempts' rows too: applied alone, in stream order.
            writes.append(Write(_REDRIVEN, (event.occurrence_id, webhook_id, event.attempt)))
            return Step(None, REQUESTED, tuple(writes))
        if event.manual and event.attempt == 1:  # a run on demand is the last run, but does not move the schedule
            writes.append(Write(_RAN_ON_DEMAND, (event.job_id, event.nominal_time)))
        elif event.attempt == 1:  # a retry is no new run
            writes.append(Write(_ADVANCE_JOB, (event.job_id, event.nominal_time, event.next_run_at, event.job_version)))
        return Step(event.execution_id, REQUESTED, tuple(writes))
    if isinstance(event, ExecutionStarted):
        return _step(event, STARTED, _STARTED, event.execution_id, event.started_at, event.worker_id)
    if isinstance(event, ExecutionSucceeded):
        return _finished(event, "success", error=None, result=event.result, traceback=None)
    if isinstance(event, ExecutionRetryScheduled):
        return _step(event, RETRY_SCHEDULED, _RETRY_SCHEDULED, event.execution_id, event.retry_at)
    if isinstance(event, ExecutionDeadLettered):
        return _step(event, DEAD_LETTERED, _DEAD_LETTERED, event.execution_id, event.occurred_at)
    if isinstance(event, ExecutionSkipped):
        return _step(event, STARTED, _SKIPPED, event.execution_id, without_nul(event.reason), event.occurred_at)
    if isinstance(event, ExecutionMissed):
        note = " (more were missed in this stretch than are recorded one by one)" if event.more_missed else ""
        args = (
            event.execution_id,
            event.occurrence_id,
            event.job_id,
            event.account_id,
            event.nominal_time,
            event.attempt,
            event.occurred_at,
            sequence,
            without_nul(f"missed ({event.policy}): {event.reason}{note}"),
        )
        # Depends on whether the occurrence has other rows: applied alone, in stream order.
        return Step(None, REQUESTED, (Write(_INSERT_MISSED, args),))
    if isinstance(event, WebhookDisabledByReceiver):
        return None  # the job event that disables the webhook updates the webhooks table
    assert isinstance(event, ExecutionFailed)
    status = "timed_out" if event.timed_out else "failure"
    return _finished(event, status, error=event.error, result=None, traceback=event.traceback)


def _finished(
    event: ExecutionSucceeded | ExecutionFailed, status: str, *, error: str | None, result: Any, traceback: str | None
) -> Step:
    return _step(
        event,
        FINISHED,
        _FINISHED,
        event.execution_id,
        status,
        event.started_at,
        event.finished_at,
        event.duration_ms,
        event.worker_id,
        event.response_code,
        without_nul(event.response_body),
        without_nul(error),
        result,
        without_nul(traceback),
    )


def _step(event: ExecutionEvent, phase: int, sql: str, *args: Any) -> Step:
    return Step(event.execution_id, phase, (Write(sql, args),))


async def apply_execution_event(conn: DbConnection, event: ExecutionEvent, sequence: int) -> None:
    """Record one execution transition on its own."""
    if (step := execution_step(event, sequence)) is not None:
        await apply_steps(conn, [step])
