"""Applies EXECUTIONS events to the executions table and the jobs' last/next run times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import msgspec

from services.projector.backfill_projection import backfill_step
from services.projector.batched_writes import Folding, Many, Step, Write, apply_steps
from shared.contracts.backfills import BackfillEvent
from shared.contracts.callbacks import CallbackDelivered, CallbackFailed, CallbackRequested
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
    ExecutionWaiting,
    WebhookDisabledByReceiver,
    nominal_time_of,
)
from shared.db.pool import DbConnection, without_nul

# Every write touches only rows of occurrences at or after the retention's horizon (services/projector/
# retention.py): a late event of a purged occurrence writes nothing, live or in a replay, so both hold the same rows
# and a purge can count a partition's rows and drop it without locking out the projector.
_RETAINED = "COALESCE((SELECT horizon FROM execution_retention), '-infinity')"

_INSERT_REQUESTED = f"""
INSERT INTO executions (
    id, occurrence_id, job_id, account_id, webhook_id, nominal_time, status, attempt, created_at, number, manual,
    redrive, timeout_seconds, backfill_id
)
SELECT $1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $11, $12, $13
WHERE $6 >= {_RETAINED}
ON CONFLICT DO NOTHING
"""

_INSERT_REQUESTED_MANY = Many(f"""
INSERT INTO executions (
    id, occurrence_id, job_id, account_id, webhook_id, nominal_time, status, attempt, created_at, number, manual,
    redrive, timeout_seconds, backfill_id
)
SELECT u.id, u.occurrence_id, u.job_id, u.account_id, u.webhook_id, u.nominal_time, 'queued', u.attempt, u.created_at,
    u.number, u.manual, u.redrive, u.timeout_seconds, u.backfill_id
FROM unnest(
    $1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::uuid[], $6::timestamptz[], $7::integer[], $8::timestamptz[],
    $9::bigint[], $10::boolean[], $11::boolean[], $12::double precision[], $13::uuid[]
) AS u(
    id, occurrence_id, job_id, account_id, webhook_id, nominal_time, attempt, created_at, number, manual, redrive,
    timeout_seconds, backfill_id
)
WHERE u.nominal_time >= {_RETAINED}
ON CONFLICT DO NOTHING
""")

# An execution's requested event and the events after it in one batch, as one row: inserted as they leave it unless
# the row exists (then they apply one by one, with their guards). The counters' rows of the statuses the execution
# held on the way are made as the row-by-row writes would have made them (with nothing counted in them).
_INSERT_FOLDED = Many(
    f"""
WITH inserted AS (
    INSERT INTO executions (
        id, occurrence_id, job_id, account_id, webhook_id, nominal_time, status, attempt, created_at, number, manual,
        redrive, timeout_seconds, worker_id, started_at, finished_at, duration_ms, response_code, response_body,
        error, result, traceback, retry_at, dead_lettered_at, backfill_id
    )
    SELECT u.id, u.occurrence_id, u.job_id, u.account_id, u.webhook_id, u.nominal_time, u.status, u.attempt,
        u.created_at, u.number, u.manual, u.redrive, u.timeout_seconds, u.worker_id, u.started_at, u.finished_at,
        u.duration_ms, u.response_code, u.response_body, u.error, u.result::jsonb, u.traceback, u.retry_at,
        u.dead_lettered_at, u.backfill_id
    FROM unnest(
        $1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::uuid[], $6::timestamptz[], $7::text[], $8::integer[],
        $9::timestamptz[], $10::bigint[], $11::boolean[], $12::boolean[], $13::double precision[], $14::text[],
        $15::timestamptz[], $16::timestamptz[], $17::integer[], $18::integer[], $19::text[], $20::text[],
        $21::text[], $22::text[], $23::timestamptz[], $24::timestamptz[], $26::uuid[]
    ) AS u(
        id, occurrence_id, job_id, account_id, webhook_id, nominal_time, status, attempt, created_at, number, manual,
        redrive, timeout_seconds, worker_id, started_at, finished_at, duration_ms, response_code, response_body,
        error, result, traceback, retry_at, dead_lettered_at, backfill_id
    )
    WHERE u.nominal_time >= {_RETAINED}
    ON CONFLICT DO NOTHING
    RETURNING id, account_id
), held AS (
    INSERT INTO execution_stats (account_id, status, executions, duration_ms_sum, durations)
    SELECT DISTINCT i.account_id, h.status, 0, 0, 0
    FROM inserted i
    JOIN unnest($1::uuid[], $25::text[]) AS p(id, held) ON p.id = i.id
    CROSS JOIN LATERAL unnest(string_to_array(p.held, ',')) AS h(status)
    ON CONFLICT DO NOTHING
)
SELECT id FROM inserted
""",
    json=frozenset({20}),
)

_SKIPPED = f"""
UPDATE executions SET status = 'skipped', error = $2, finished_at = $3
WHERE id = $1 AND nominal_time = $4 AND status = 'queued'
    AND nominal_time >= {_RETAINED}
"""

_SKIPPED_MANY = Many(f"""
UPDATE executions e SET status = 'skipped', error = u.error, finished_at = u.finished_at
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS u(id, error, finished_at, nominal_time)
WHERE e.id = u.id AND e.nominal_time = u.nominal_time AND e.status = 'queued'
    AND e.nominal_time >= {_RETAINED}
""")

# An occurrence published before a crash can be found missed by the ticker that takes over from an older
# watermark: it ran, so it is not recorded as missed.
_INSERT_MISSED = f"""
INSERT INTO executions (
    id, occurrence_id, job_id, account_id, webhook_id, nominal_time, status, attempt, created_at, number, manual,
    redrive, error
)
SELECT $1, $2, $3, $4, NULL, $5, 'missed', $6, $7, $8, false, false, $9
WHERE NOT EXISTS (SELECT 1 FROM executions WHERE occurrence_id = $2)
    AND $5 >= {_RETAINED}
ON CONFLICT DO NOTHING
"""

_ADVANCE_JOB = """
INSERT INTO job_runs (job_id, last_run_at, next_run_at, job_version, last_scheduled_at) VALUES ($1, $2, $3, $4, $2)
ON CONFLICT (job_id) DO UPDATE SET
    last_run_at = GREATEST(job_runs.last_run_at, EXCLUDED.last_run_at), next_run_at = EXCLUDED.next_run_at,
    job_version = EXCLUDED.job_version, last_scheduled_at = EXCLUDED.last_scheduled_at
WHERE job_runs.last_scheduled_at IS NULL OR job_runs.last_scheduled_at < EXCLUDED.last_scheduled_at
"""

# Several executions of one job in one statement: the row one by one would leave, from the first of the latest
# scheduled time (a later one at the same time does not pass the guard).
_ADVANCE_JOB_MANY = Many("""
INSERT INTO job_runs (job_id, last_run_at, next_run_at, job_version, last_scheduled_at)
SELECT DISTINCT ON (u.job_id) u.job_id, u.at, u.next_run_at, u.job_version, u.at
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::bigint[]) WITH ORDINALITY
    AS u(job_id, at, next_run_at, job_version, n)
ORDER BY u.job_id, u.at DESC, u.n
ON CONFLICT (job_id) DO UPDATE SET
    last_run_at = GREATEST(job_runs.last_run_at, EXCLUDED.last_run_at), next_run_at = EXCLUDED.next_run_at,
    job_version = EXCLUDED.job_version, last_scheduled_at = EXCLUDED.last_scheduled_at
WHERE job_runs.last_scheduled_at IS NULL OR job_runs.last_scheduled_at < EXCLUDED.last_scheduled_at
""")

# A run on demand moves only last_run_at: with job_version 0 a new row leaves next_run_at to the jobs table.
_RAN_ON_DEMAND = """
INSERT INTO job_runs (job_id, last_run_at, next_run_at, job_version) VALUES ($1, $2, NULL, 0)
ON CONFLICT (job_id) DO UPDATE SET last_run_at = EXCLUDED.last_run_at
WHERE job_runs.last_run_at < EXCLUDED.last_run_at
"""

_RAN_ON_DEMAND_MANY = Many("""
INSERT INTO job_runs (job_id, last_run_at, next_run_at, job_version)
SELECT u.job_id, max(u.at), NULL, 0 FROM unnest($1::uuid[], $2::timestamptz[]) AS u(job_id, at) GROUP BY u.job_id
ON CONFLICT (job_id) DO UPDATE SET last_run_at = EXCLUDED.last_run_at
WHERE job_runs.last_run_at < EXCLUDED.last_run_at
""")

_RETRY_SCHEDULED = f"""
UPDATE executions SET retry_at = $2
WHERE id = $1 AND nominal_time = $3 AND nominal_time >= {_RETAINED}
"""

_RETRY_SCHEDULED_MANY = Many(f"""
UPDATE executions e SET retry_at = u.retry_at
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS u(id, retry_at, nominal_time)
WHERE e.id = u.id AND e.nominal_time = u.nominal_time
    AND e.nominal_time >= {_RETAINED}
""")

# A re-driven occurrence leaves the dead-letter list: its last attempt is no longer waiting for anyone.
_REDRIVEN = f"""
UPDATE executions SET status = 'failure'
WHERE occurrence_id = $1 AND nominal_time = $4 AND webhook_id IS NOT DISTINCT FROM $2
    AND attempt < $3 AND status = 'dead_letter'
    AND nominal_time >= {_RETAINED}
"""

_DEAD_LETTERED = f"""
UPDATE executions SET status = 'dead_letter', dead_lettered_at = $2
WHERE id = $1 AND nominal_time = $3 AND status IN ('failure', 'timed_out')
    AND nominal_time >= {_RETAINED}
"""

_DEAD_LETTERED_MANY = Many(f"""
UPDATE executions e SET status = 'dead_letter', dead_lettered_at = u.dead_lettered_at
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS u(id, dead_lettered_at, nominal_time)
WHERE e.id = u.id AND e.nominal_time = u.nominal_time AND e.status IN ('failure', 'timed_out')
    AND e.nominal_time >= {_RETAINED}
""")

_STARTED = f"""
UPDATE executions SET status = 'running', started_at = $2, worker_id = $3
WHERE id = $1 AND nominal_time = $4 AND status = 'queued'
    AND nominal_time >= {_RETAINED}
"""

_STARTED_MANY = Many(f"""
UPDATE executions e SET status = 'running', started_at = u.started_at, worker_id = u.worker_id
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::timestamptz[]) AS u(id, started_at, worker_id, nominal_time)
WHERE e.id = u.id AND e.nominal_time = u.nominal_time AND e.status = 'queued'
    AND e.nominal_time >= {_RETAINED}
""")

_FINISHED = f"""
UPDATE executions SET status = $2, started_at = COALESCE(started_at, $3), finished_at = $4, duration_ms = $5,
    worker_id = $6, response_code = $7, response_body = $8, error = $9, result = $10, traceback = $11
WHERE id = $1 AND nominal_time = $12 AND status IN ('queued', 'running')
    AND nominal_time >= {_RETAINED}
"""

_FINISHED_MANY = Many(
    f"""
UPDATE executions e SET status = u.status, started_at = COALESCE(e.started_at, u.started_at),
    finished_at = u.finished_at, duration_ms = u.duration_ms, worker_id = u.worker_id,
    response_code = u.response_code, response_body = u.response_body, error = u.error, result = u.result::jsonb,
    traceback = u.traceback
FROM unnest(
    $1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::integer[], $6::text[], $7::integer[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[]
) AS u(id, status, started_at, finished_at, duration_ms, worker_id, response_code, response_body, error, result,
    traceback, nominal_time)
WHERE e.id = u.id AND e.nominal_time = u.nominal_time AND e.status IN ('queued', 'running')
    AND e.nominal_time >= {_RETAINED}
""",
    json=frozenset({9}),
)


# Where each event sits in an execution's life (see batched_writes).
REQUESTED, STARTED, FINISHED, RETRY_SCHEDULED, DEAD_LETTERED = range(5)


class ExecutionRow(msgspec.Struct, frozen=True):
    """An execution's row as its requested event and the events after it in one batch leave it, had they been
    applied one by one: each change below does what its statement does, guard included.

    `requested`: the requested insert's values (_INSERT_REQUESTED's parameters); `held`: the statuses it had before
    the one it has."""

    requested: tuple[Any, ...]
    status: str = "queued"
    worker_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    response_code: int | None = None
    response_body: str | None = None
    error: str | None = None
    result: Any = None
    traceback: str | None = None
    retry_at: datetime | None = None
    dead_lettered_at: datetime | None = None
    held: tuple[str, ...] = ()

    def moved(self, status: str, **fields: Any) -> ExecutionRow:
        return msgspec.structs.replace(self, status=status, held=(*self.held, self.status), **fields)

    def args(self) -> tuple[Any, ...]:
        """_INSERT_FOLDED's values for this row."""
        (id_, occurrence, job, account, webhook, nominal, attempt, created, number, manual, redrive, timeout,
         backfill) = self.requested  # fmt: skip
        return (
            id_, occurrence, job, account, webhook, nominal, self.status, attempt, created, number, manual, redrive,
            timeout, self.worker_id, self.started_at, self.finished_at, self.duration_ms, self.response_code,
            self.response_body, self.error, self.result, self.traceback, self.retry_at, self.dead_lettered_at,
            ",".join(self.held), backfill,
        )  # fmt: skip


def _started(started_at: datetime, worker_id: str, row: ExecutionRow) -> ExecutionRow:
    if row.status != "queued":
        return row
    return row.moved("running", started_at=started_at, worker_id=worker_id)


def _skipped(error: str, finished_at: datetime, row: ExecutionRow) -> ExecutionRow:
    if row.status != "queued":
        return row
    return row.moved("skipped", error=error, finished_at=finished_at)


def _finished(values: tuple[Any, ...], row: ExecutionRow) -> ExecutionRow:
    if row.status not in ("queued", "running"):
        return row
    _, status, started_at, finished_at, duration_ms, worker_id, code, body, error, result, traceback, _ = values
    return row.moved(
        status,
        started_at=row.started_at if row.started_at is not None else started_at,
        finished_at=finished_at,
        duration_ms=duration_ms,
        worker_id=worker_id,
        response_code=code,
        response_body=body,
        error=error,
        result=result,
        traceback=traceback,
    )


def _retry_scheduled(retry_at: datetime, row: ExecutionRow) -> ExecutionRow:
    return msgspec.structs.replace(row, retry_at=retry_at)


def _dead_lettered(at: datetime, row: ExecutionRow) -> ExecutionRow:
    if row.status not in ("failure", "timed_out"):
        return row
    return row.moved("dead_letter", dead_lettered_at=at)


def execution_step(event: ExecutionEvent, sequence: int) -> Step | None:
    """The writes of one execution transition; transitions never move a finished execution back.

    An execution's number is the stream sequence of its ExecutionRequested.
    """
    if isinstance(event, BackfillEvent):
        return backfill_step(event)
    if isinstance(event, ExecutionRequested):
        webhook_id = event.webhook.id if event.webhook else None
        requested = (
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
            event.backfill_id,
        )
        writes = [Write(_INSERT_REQUESTED, requested, _INSERT_REQUESTED_MANY)]
        if event.redrive:
            # Touches the earlier attempts' rows too: applied alone, in stream order.
            writes.append(Write(_REDRIVEN, (event.occurrence_id, webhook_id, event.attempt, event.nominal_time)))
            return Step(None, REQUESTED, tuple(writes))
        if event.manual and event.attempt == 1:  # a run on demand is the last run, but does not move the schedule
            writes.append(Write(_RAN_ON_DEMAND, (event.job_id, event.nominal_time), _RAN_ON_DEMAND_MANY))
        elif event.attempt == 1:  # a retry is no new run
            advance = (event.job_id, event.nominal_time, event.next_run_at, event.job_version)
            writes.append(Write(_ADVANCE_JOB, advance, _ADVANCE_JOB_MANY))
        folding = Folding(ExecutionRow(requested), _INSERT_FOLDED, ExecutionRow.args)
        return Step(event.execution_id, REQUESTED, tuple(writes), folding)
    # The row's partition: an update names it, so it looks in one partition instead of every one (an id that is no
    # occurrence id, which no producer makes, gives None: the update finds no row).
    nominal = nominal_time_of(event.occurrence_id)
    if isinstance(event, ExecutionStarted):
        write = Write(_STARTED, (event.execution_id, event.started_at, event.worker_id, nominal), _STARTED_MANY)
        return _step(STARTED, write, partial(_started, event.started_at, event.worker_id))
    if isinstance(event, ExecutionSucceeded):
        return _finished_step(event, "success", nominal, error=None, result=event.result, traceback=None)
    if isinstance(event, ExecutionRetryScheduled):
        write = Write(_RETRY_SCHEDULED, (event.execution_id, event.retry_at, nominal), _RETRY_SCHEDULED_MANY)
        return _step(RETRY_SCHEDULED, write, partial(_retry_scheduled, event.retry_at))
    if isinstance(event, ExecutionDeadLettered):
        write = Write(_DEAD_LETTERED, (event.execution_id, event.occurred_at, nominal), _DEAD_LETTERED_MANY)
        return _step(DEAD_LETTERED, write, partial(_dead_lettered, event.occurred_at))
    if isinstance(event, ExecutionSkipped):
        reason = without_nul(event.reason)
        write = Write(_SKIPPED, (event.execution_id, reason, event.occurred_at, nominal), _SKIPPED_MANY)
        return _step(STARTED, write, partial(_skipped, reason, event.occurred_at))
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
    if isinstance(event, CallbackRequested | CallbackDelivered | CallbackFailed | ExecutionWaiting):
        # Callbacks, and deliveries waiting for their flow-control key, are events and metrics; the read models do
        # not keep them (a waiting execution stays queued until it runs).
        return None
    assert isinstance(event, ExecutionFailed)
    status = "timed_out" if event.timed_out else "failure"
    return _finished_step(event, status, nominal, error=event.error, result=None, traceback=event.traceback)


def _finished_step(
    event: ExecutionSucceeded | ExecutionFailed,
    status: str,
    nominal: datetime | None,
    *,
    error: str | None,
    result: Any,
    traceback: str | None,
) -> Step:
    args = (
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
        nominal,
    )
    return _step(FINISHED, Write(_FINISHED, args, _FINISHED_MANY), partial(_finished, args))


def _step(phase: int, write: Write, change: Callable[[ExecutionRow], ExecutionRow]) -> Step:
    return Step(write.args[0], phase, (write,), change=change)


async def apply_execution_event(conn: DbConnection, event: ExecutionEvent, sequence: int) -> None:
    """Record one execution transition on its own."""
    if (step := execution_step(event, sequence)) is not None:
        await apply_steps(conn, [step])
