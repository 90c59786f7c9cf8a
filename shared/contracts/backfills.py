"""Backfills: a job's occurrences over a past range, run on request, as events of the EXECUTIONS stream (kind
`backfill`, on the job's account and id).

`BackfillRequested` starts one (the api); the projector's backfill runner walks the range at `per_second`,
publishes an `ExecutionRequested` (with `backfill_id`) for each target that has not succeeded, reports
`BackfillProgressed` as it goes (where a runner that takes over resumes) and ends it with `BackfillCompleted`;
`BackfillCancelled` (the api, or the runner when the job is gone) stops it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

# A backfill's range holds at most this many occurrences; it runs 1-100 of them per second; an account has at most
# MAX_RUNNING_BACKFILLS running at once.
MAX_BACKFILL_OCCURRENCES = 10_000
MIN_BACKFILL_RATE = 1
MAX_BACKFILL_RATE = 100
DEFAULT_BACKFILL_RATE = 10
MAX_RUNNING_BACKFILLS = 3
# A range ends at least this long before now, beyond the job's jitter: by then the ticker has published every
# occurrence of it that it will (a backfill must not run one the ticker is about to publish).
BACKFILL_SETTLE_SECONDS = 10.0
# The lease of the one runner of every backfill (a projector holds it).
BACKFILLS_LEASE = "projector.backfills"


class BackfillCounts(msgspec.Struct, frozen=True, kw_only=True):
    """How far a backfill got: `done` occurrences walked; of their targets (webhooks, or the task), `requested` run
    by it, `already_succeeded` left alone (their latest attempt succeeded), `in_flight` left alone (still under
    way)."""

    done: int = 0
    requested: int = 0
    already_succeeded: int = 0
    in_flight: int = 0


class _BackfillEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="event_type"):
    """Envelope shared by backfill events."""

    schema_version: int = 1
    backfill_id: UUID
    job_id: UUID
    account_id: UUID
    occurred_at: datetime


class BackfillRequested(_BackfillEvent, frozen=True, kw_only=True, tag=True):
    """Run the job's occurrences in [start, end] (`total` of them), `per_second` at most."""

    start: datetime
    end: datetime
    per_second: int
    total: int
    requested_by: str | None = None


class BackfillProgressed(_BackfillEvent, frozen=True, kw_only=True, tag=True):
    """Every occurrence up to `through` (a nominal time) was walked; `counts` so far."""

    through: datetime
    counts: BackfillCounts


class BackfillCompleted(_BackfillEvent, frozen=True, kw_only=True, tag=True):
    """Every occurrence of the range was walked; `counts` in all."""

    counts: BackfillCounts


class BackfillCancelled(_BackfillEvent, frozen=True, kw_only=True, tag=True):
    """Stopped before the end (`reason`: asked for, or the job was deleted); what it requested still runs."""

    reason: str


BackfillEvent = BackfillRequested | BackfillProgressed | BackfillCompleted | BackfillCancelled


def backfill_message_id(backfill_id: UUID, what: str) -> str:
    """The message id of a backfill's event (`what`: requested, cancelled, completed, or progressed-<through>), so a
    repeat after a crash is a duplicate."""
    return f"backfill-{backfill_id}-{what}"
