"""What a backfill does with each target of an occurrence, from the executions the read model holds of it; and which
occurrences a range holds."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from services.projector.backfill_plan import Plan, Recorded, counted, plan
from shared.contracts.backfills import BackfillCounts
from shared.contracts.jobs import JobState
from shared.contracts.schedules import CronSchedule, Exclusions
from shared.schedule.firing import fires_between

MINE, OTHER = uuid.uuid4(), uuid.uuid4()
A, B = uuid.uuid4(), uuid.uuid4()


def test_a_target_that_never_ran_runs_as_attempt_one() -> None:
    result = plan([A, B], [], MINE)
    assert result.run == {A: 1, B: 1} and result.requested == 2


def test_a_succeeded_target_is_left_alone_even_after_failed_attempts() -> None:
    rows = [Recorded(A, 1, "failure", None), Recorded(A, 2, "success", None), Recorded(B, 1, "dead_letter", None)]
    result = plan([A, B], rows, MINE)
    assert result.run == {B: 2}
    assert (result.requested, result.already_succeeded, result.in_flight) == (1, 1, 0)


def test_a_target_still_under_way_is_left_alone() -> None:
    for status in ("queued", "running", "failure", "timed_out"):
        result = plan([A], [Recorded(A, 1, status, None)], MINE)
        assert result.run == {} and result.in_flight == 1, status


def test_missed_skipped_and_dead_lettered_targets_run_again() -> None:
    assert plan([A], [Recorded(A, 1, "skipped", None)], MINE).run == {A: 2}
    assert plan([A], [Recorded(A, 3, "dead_letter", None), Recorded(A, 2, "failure", None)], MINE).run == {A: 4}
    # The record of a missed occurrence (no webhook, its own id) is no attempt: its targets run as attempt 1.
    assert plan([None], [Recorded(None, 1, "missed", None)], MINE).run == {None: 1}
    assert plan([A], [Recorded(None, 1, "missed", None)], MINE).run == {A: 1}


def test_what_this_backfill_already_requested_is_counted_not_run_again() -> None:
    rows = [Recorded(A, 1, "dead_letter", None), Recorded(A, 2, "dead_letter", MINE), Recorded(B, 1, "queued", OTHER)]
    result = plan([A, B], rows, MINE)
    assert result.run == {} and result.requested == 1 and result.in_flight == 1


def test_counts_add_up() -> None:
    counts = counted(BackfillCounts(done=1, requested=2), Plan(requested=1, already_succeeded=2, in_flight=3))
    assert counts == BackfillCounts(done=2, requested=3, already_succeeded=2, in_flight=3)


def _job(expression: str, **fields: object) -> JobState:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return JobState(
        id=uuid.uuid4(), account_id=uuid.uuid4(), name="j", type=1, schedule=CronSchedule(expression=expression),
        created_at=now, updated_at=now, **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_range_holds_its_bounds_and_skips_exclusions_and_the_window() -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
    job = _job("0 9 * * *", exclusions=Exclusions(dates=(date(2026, 3, 4),)), end_at=start + timedelta(days=4))
    days = [t.day for t in fires_between(job, start, start + timedelta(days=7))]
    assert days == [2, 3, 5, 6]  # both bounds inclusive; the 4th excluded; nothing after end_at (the 6th)
    assert list(fires_between(job, start + timedelta(seconds=1), start + timedelta(hours=23))) == []
