"""The ticker's index, without any I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from services.ticker import schedule_index
from services.ticker.schedule_index import ScheduleIndex
from shared.contracts.job_timing import JobTimingEvent
from shared.contracts.jobs import (
    JobDeleted,
    JobPaused,
    JobResumed,
    JobState,
    JobUpdated,
    MisfirePolicy,
)
from shared.contracts.schedules import DateSchedule
from shared.schedule.firing import jitter_of
from tests.factories import job_created, job_state, timing_of

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
GRACE = timedelta(seconds=60)


def state(expression: str = "* * * * * *", enabled: bool = True) -> JobState:
    return job_state(expression, enabled=enabled, at=T0)


def created(s: JobState) -> JobTimingEvent:
    return timing_of(job_created(s))


def test_due_occurrences_pop_in_order_and_advance() -> None:
    index = ScheduleIndex()
    s = state()
    index.apply(created(s), T0)
    due = index.pop_due(T0 + timedelta(seconds=3), GRACE)
    assert [d.nominal_time for d in due] == [T0 + timedelta(seconds=i) for i in (1, 2, 3)]
    assert due[-1].next_due == T0 + timedelta(seconds=4)
    assert index.next_due() == T0 + timedelta(seconds=4)
    assert index.pop_due(T0 + timedelta(seconds=3), GRACE) == []


def test_a_horizon_pops_occurrences_due_within_the_lead_and_none_is_missed() -> None:
    index = ScheduleIndex()
    index.apply(created(state()), T0)
    now = T0 + timedelta(seconds=2)
    due = index.pop_due(now, GRACE, looked_until=T0 + timedelta(seconds=1), horizon=now + timedelta(seconds=2))
    assert [d.nominal_time for d in due] == [T0 + timedelta(seconds=i) for i in (1, 2, 3, 4)]
    assert index.take_missed() == []
    # The next look, a second later, publishes only what entered the lead since.
    later = now + timedelta(seconds=1)
    due = index.pop_due(later, GRACE, looked_until=now, horizon=later + timedelta(seconds=2))
    assert [d.nominal_time for d in due] == [T0 + timedelta(seconds=5)]


def test_paused_and_deleted_jobs_do_not_fire() -> None:
    index = ScheduleIndex()
    s = state()
    index.apply(created(s), T0)
    paused = JobPaused(
        event_id=uuid.uuid4(),
        job_id=s.id,
        account_id=s.account_id,
        version=2,
        occurred_at=T0,
        job=msgspec.structs.replace(s, enabled=False),
        next_run_at=None,
    )
    index.apply(timing_of(paused), T0)
    assert index.pop_due(T0 + timedelta(seconds=5), GRACE) == []
    resumed = JobResumed(
        event_id=uuid.uuid4(),
        job_id=s.id,
        account_id=s.account_id,
        version=3,
        occurred_at=T0 + timedelta(seconds=5),
        job=s,
        next_run_at=None,
    )
    index.apply(timing_of(resumed), T0 + timedelta(seconds=5))
    assert [d.nominal_time for d in index.pop_due(T0 + timedelta(seconds=6), GRACE)] == [T0 + timedelta(seconds=6)]
    deleted = JobDeleted(
        event_id=uuid.uuid4(), job_id=s.id, account_id=s.account_id, version=4, occurred_at=T0, job=s, next_run_at=None
    )
    index.apply(timing_of(deleted), T0)
    assert index.pop_due(T0 + timedelta(seconds=60), GRACE) == []
    assert s.id not in index.jobs


def test_stale_versions_are_ignored_and_unchanged_schedules_keep_their_next_due() -> None:
    index = ScheduleIndex()
    s = state()
    index.apply(created(s), T0)
    renamed = JobUpdated(
        event_id=uuid.uuid4(),
        job_id=s.id,
        account_id=s.account_id,
        version=2,
        occurred_at=T0 + timedelta(seconds=30),
        job=msgspec.structs.replace(s, name="renamed"),
        next_run_at=None,
    )
    index.apply(timing_of(renamed), T0 + timedelta(seconds=30))
    assert index.next_due() == T0 + timedelta(seconds=1)
    index.apply(created(s), T0)  # an old version arriving late changes nothing
    assert index.jobs[s.id].version == 2


# A job every 10 s; the ticker last looked at T0+5 s and looks again 3 minutes later.
LOOKED = T0 + timedelta(seconds=5)
BACK = T0 + timedelta(seconds=185)
GAP = [T0 + timedelta(seconds=s) for s in range(10, 181, 10)]  # due while nobody looked


def after_outage(policy: str, grace: float | None = None) -> tuple[ScheduleIndex, list[datetime], list[datetime]]:
    index = ScheduleIndex()
    s = job_state("*/10 * * * * *", at=T0, misfire=MisfirePolicy(policy=policy, grace_seconds=grace))  # type: ignore[arg-type]
    index.apply(created(s), T0)
    fired = [d.nominal_time for d in index.pop_due(BACK, GRACE, LOOKED)]
    missed = [m.nominal_time for m in index.take_missed()]
    assert index.next_due() == T0 + timedelta(seconds=190)
    return index, fired, missed


def test_fire_all_fires_what_is_within_the_grace_and_records_the_rest_missed() -> None:
    _, fired, missed = after_outage("fire_all", grace=60)
    assert fired == [t for t in GAP if t >= BACK - timedelta(seconds=60)] == GAP[-6:]
    assert missed == GAP[:-6]


def test_fire_all_uses_the_operators_grace_when_the_job_sets_none() -> None:
    _, fired, missed = after_outage("fire_all")
    assert (fired, missed) == (GAP[-6:], GAP[:-6])  # GRACE is 60 s


def test_fire_latest_fires_only_the_most_recent() -> None:
    index, fired, missed = after_outage("fire_latest")
    assert (fired, missed) == ([GAP[-1]], GAP[:-1])
    assert index.missed == len(GAP) - 1


def test_skip_fires_none_and_records_every_one() -> None:
    _, fired, missed = after_outage("skip")
    assert (fired, missed) == ([], GAP)


def test_without_an_outage_nothing_is_missed_however_late_the_pop() -> None:
    """What fell due while the ticker was busy publishing is late, not missed: looked_until is when it was free."""
    index = ScheduleIndex()
    s = job_state("*/10 * * * * *", at=T0, misfire=MisfirePolicy(policy="skip"))
    index.apply(created(s), T0)
    assert [d.nominal_time for d in index.pop_due(BACK, GRACE, BACK - timedelta(seconds=1))] == GAP
    assert index.take_missed() == []
    # Occurrences due within the tolerance before now are on time even right after an outage.
    index.apply(created(msgspec.structs.replace(s, id=uuid.uuid4())), T0)
    on_time = index.pop_due(T0 + timedelta(seconds=11), GRACE, T0 + timedelta(seconds=5))
    assert [d.nominal_time for d in on_time] == [T0 + timedelta(seconds=10)]


def test_a_long_outage_records_a_bounded_number_and_says_there_were_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule_index, "MAX_MISSED_RECORDED", 50)
    for policy in ("skip", "fire_latest"):
        index = ScheduleIndex()
        s = job_state("* * * * * *", at=T0, misfire=MisfirePolicy(policy=policy))  # type: ignore[arg-type]
        index.apply(created(s), T0)
        now = T0 + timedelta(hours=1)
        fired = [d.nominal_time for d in index.pop_due(now, GRACE, T0)]
        missed = index.take_missed()
        assert missed[-1].more_missed and not any(m.more_missed for m in missed[:-1])
        on_time = [now - timedelta(seconds=i) for i in (2, 1, 0)]
        if policy == "skip":
            assert len(missed) == 50 and fired == on_time
        else:
            # The latest missed one still fires, found past the recorded ones.
            assert fired == [now - timedelta(seconds=3), *on_time]
            assert missed[0].nominal_time == T0 + timedelta(seconds=1)


def test_with_jitter_an_occurrence_not_yet_due_for_publication_is_not_missed() -> None:
    """Nominal time passed, but its jitter puts its publication after now: it fires later, on time."""
    minute = T0 + timedelta(minutes=1)
    s = job_state("0 * * * * *", at=T0, jitter_seconds=50.0, misfire=MisfirePolicy(policy="skip"))
    while jitter_of(s, minute) < timedelta(seconds=10):  # a job whose jitter that minute is long enough
        s = msgspec.structs.replace(s, id=uuid.uuid4())
    index = ScheduleIndex()
    index.apply(created(s), T0)
    now = minute + timedelta(seconds=5)
    assert (index.pop_due(now, GRACE, T0 + timedelta(seconds=1)), index.take_missed()) == ([], [])
    assert index.jobs[s.id].next_due == minute
    assert [d.nominal_time for d in index.pop_due(minute + jitter_of(s, minute), GRACE, now)] == [minute]


def test_after_an_outage_a_jittered_occurrence_not_yet_due_is_neither_missed_nor_fired_early() -> None:
    last = T0 + timedelta(seconds=60)
    s = job_state("*/10 * * * * *", at=T0, jitter_seconds=9.0, misfire=MisfirePolicy(policy="skip"))
    while jitter_of(s, last) < timedelta(seconds=5):  # 60 s + its jitter lands after the missed stretch's end
        s = msgspec.structs.replace(s, id=uuid.uuid4())
    index = ScheduleIndex()
    index.apply(created(s), T0)
    now = T0 + timedelta(seconds=65)
    assert index.pop_due(now, GRACE, T0 + timedelta(seconds=1)) == []
    assert [m.nominal_time for m in index.take_missed()] == [T0 + timedelta(seconds=i) for i in range(10, 60, 10)]
    assert index.jobs[s.id].next_due == last
    assert [d.nominal_time for d in index.pop_due(last + jitter_of(s, last), GRACE, now)] == [last]


@pytest.mark.parametrize(
    ("policy", "ago", "fires"),
    [
        ("fire_all", 30, True),  # within the (operator's) 60 s grace: fires at once
        ("fire_all", 600, False),  # older than the grace: recorded missed
        ("fire_latest", 600, True),  # the latest, however old
        ("skip", 30, False),
    ],
)
def test_a_date_job_scheduled_in_the_past_goes_through_its_misfire_policy(policy: str, ago: int, fires: bool) -> None:
    at = T0 - timedelta(seconds=ago)
    s = job_state(at=T0, schedule=DateSchedule(at=at), misfire=MisfirePolicy(policy=policy))  # type: ignore[arg-type]
    index = ScheduleIndex()
    index.apply(created(s), T0)
    due = index.pop_due(T0 + timedelta(milliseconds=5), GRACE, looked_until=T0)
    missed = index.take_missed()
    assert [d.nominal_time for d in due] == ([at] if fires else [])
    assert [m.nominal_time for m in missed] == ([] if fires else [at])
    assert all("had passed when the job was scheduled" in m.reason for m in missed)
    assert index.next_due() is None
    # A ticker taking the job over later (its watermark after the event) does not look at that occurrence again.
    again = ScheduleIndex()
    looked = T0 + timedelta(seconds=10)
    again.apply(created(s), looked, catch_up_from=looked)
    assert again.pop_due(looked + timedelta(seconds=5), GRACE, looked_until=looked) == []
    assert again.take_missed() == []


def test_a_past_date_outside_the_jobs_window_never_fires() -> None:
    at = T0 - timedelta(seconds=30)
    s = job_state(at=T0, schedule=DateSchedule(at=at), start_at=T0 - timedelta(seconds=10))
    index = ScheduleIndex()
    index.apply(created(s), T0)
    assert index.pop_due(T0 + timedelta(seconds=1), GRACE, looked_until=T0) == []
    assert index.take_missed() == []


@pytest.mark.timeout(10)
def test_a_jittered_occurrence_not_yet_due_after_a_stall_fires_once_within_the_horizon() -> None:
    """Nominal time inside the stretch nobody looked at, publication time after it but within the fire lead: it
    fires, once, and is not missed. It used to be taken for missed again at every pop, for ever (a ticker stalled
    more than 2 s with jittered jobs spun)."""
    due = T0 + timedelta(seconds=42)
    s = job_state("*/7 * * * * *", at=T0, jitter_seconds=3.0)
    while not timedelta(seconds=1.2) <= jitter_of(s, due) <= timedelta(seconds=2.4):
        s = msgspec.structs.replace(s, id=uuid.uuid4())
    index = ScheduleIndex()
    looked = T0 + timedelta(seconds=40.5)
    index.apply(created(s), looked, catch_up_from=looked)
    now = T0 + timedelta(seconds=45)  # misses end at 43 s; 42 s + its jitter is before now + the lead
    fired = index.pop_due(now, GRACE, looked, now + timedelta(seconds=0.5))
    assert [d.nominal_time for d in fired] == [due]
    assert index.take_missed() == []
    assert index.next_due() == T0 + timedelta(seconds=49) + jitter_of(s, T0 + timedelta(seconds=49))
