"""Applies backfill events (EXECUTIONS stream, kind `backfill`) to the backfills table. A backfill that has ended
stays as it ended: a late progress or a second end changes nothing."""

from __future__ import annotations

from services.projector.batched_writes import Step, Write
from shared.contracts.backfills import BackfillCompleted, BackfillEvent, BackfillProgressed, BackfillRequested
from shared.db.pool import without_nul

_REQUESTED = """
INSERT INTO backfills (
    id, job_id, account_id, range_start, range_end, per_second, total, status, requested_by, created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8, $9, $9)
ON CONFLICT DO NOTHING
"""
_PROGRESSED = """
UPDATE backfills SET through = $2, done = $3, requested = $4, already_succeeded = $5, in_flight = $6, updated_at = $7
WHERE id = $1 AND status = 'running' AND (through IS NULL OR through < $2)
"""
_COMPLETED = """
UPDATE backfills SET status = 'completed', through = range_end, done = $2, requested = $3, already_succeeded = $4,
    in_flight = $5, updated_at = $6, finished_at = $6
WHERE id = $1 AND status = 'running'
"""
_CANCELLED = """
UPDATE backfills SET status = 'cancelled', reason = $2, updated_at = $3, finished_at = $3
WHERE id = $1 AND status = 'running'
"""

# Backfill events come a few per backfill: each is applied alone, in stream order.
_ALONE = 0


def backfill_step(event: BackfillEvent) -> Step:
    if isinstance(event, BackfillRequested):
        args: tuple[object, ...] = (
            event.backfill_id, event.job_id, event.account_id, event.start, event.end, event.per_second, event.total,
            without_nul(event.requested_by), event.occurred_at,
        )  # fmt: skip
        return Step(None, _ALONE, (Write(_REQUESTED, args),))
    if isinstance(event, BackfillProgressed):
        c = event.counts
        args = (
            event.backfill_id,
            event.through,
            c.done,
            c.requested,
            c.already_succeeded,
            c.in_flight,
            event.occurred_at,
        )
        return Step(None, _ALONE, (Write(_PROGRESSED, args),))
    if isinstance(event, BackfillCompleted):
        c = event.counts
        args = (event.backfill_id, c.done, c.requested, c.already_succeeded, c.in_flight, event.occurred_at)
        return Step(None, _ALONE, (Write(_COMPLETED, args),))
    return Step(None, _ALONE, (Write(_CANCELLED, (event.backfill_id, without_nul(event.reason), event.occurred_at)),))
