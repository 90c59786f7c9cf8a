"""What a backfill does with one occurrence: for each of its targets (a webhook, or the task), given the executions
the read model holds of that occurrence, run it (and as which attempt) or leave it (and why). Pure, so the rules
docs/schedules.md states are tested on their own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from shared.contracts.backfills import BackfillCounts

# Statuses of an attempt whose occurrence is still under way: it runs, waits, or failed with a retry to come.
_UNDER_WAY = frozenset({"queued", "running", "failure", "timed_out"})


@dataclass(frozen=True, slots=True)
class Recorded:
    """One execution row of the occurrence: its target (None: the task, or the record of a missed occurrence)."""

    webhook_id: UUID | None
    attempt: int
    status: str
    backfill_id: UUID | None


@dataclass(slots=True)
class Plan:
    """`run`: the attempt number to request for each target that runs; the rest were counted."""

    run: dict[UUID | None, int] = field(default_factory=dict)
    requested: int = 0
    already_succeeded: int = 0
    in_flight: int = 0


def plan(targets: Iterable[UUID | None], recorded: Iterable[Recorded], backfill_id: UUID) -> Plan:
    """Each target: already run by this backfill (a repeat after a crash: counted as requested, not run again); its
    latest attempt succeeded (left alone); still under way (left alone); never ran (or only missed): it runs as
    attempt 1; otherwise (skipped, dead-lettered) it runs as the attempt after its last."""
    # The record of a missed occurrence is no attempt of any target (its id is its own): a missed target never ran.
    rows = [r for r in recorded if r.status != "missed"]
    result = Plan()
    for target in targets:
        mine = [r for r in rows if r.webhook_id == target]
        latest = max(mine, key=lambda r: r.attempt, default=None)
        if any(r.backfill_id == backfill_id for r in mine):
            result.requested += 1
        elif latest is None:
            result.run[target] = 1
            result.requested += 1
        elif any(r.status == "success" for r in mine):
            result.already_succeeded += 1
        elif latest.status in _UNDER_WAY:
            result.in_flight += 1
        else:
            result.run[target] = latest.attempt + 1
            result.requested += 1
    return result


def counted(counts: BackfillCounts, step: Plan) -> BackfillCounts:
    """`counts` after one more occurrence walked."""
    return BackfillCounts(
        done=counts.done + 1,
        requested=counts.requested + step.requested,
        already_succeeded=counts.already_succeeded + step.already_succeeded,
        in_flight=counts.in_flight + step.in_flight,
    )
