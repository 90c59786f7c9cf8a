"""The compact index fires exactly what the whole-job index before it fired (tests/whole_job_index.py, unchanged
from commit 700e38f): the same occurrences at the same pops, the same missed ones with the same policy, the same
next due time, for every schedule kind, through creations, edits, reschedules, pauses, resumptions, deletions,
outages and jobs taken over from a watermark; and an occurrence it pops carries either no state or the job's
state at the version indexed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ticker.schedule_index import ScheduleIndex
from shared.contracts.jobs import (
    JobCreated,
    JobDeleted,
    JobEvent,
    JobPaused,
    JobResumed,
    JobState,
    JobUpdated,
    MisfirePolicy,
)
from shared.contracts.schedules import (
    CalendarRule,
    CalendarSchedule,
    CronSchedule,
    DateSchedule,
    IntervalSchedule,
    Schedule,
)
from tests.factories import job_state, timing_of
from tests.whole_job_index import ScheduleIndex as WholeJobIndex

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 28, 23, 58, tzinfo=UTC)  # the night before Europe's clocks go forward
GRACE = timedelta(seconds=60)
LEAD = timedelta(seconds=0.5)


def schedules() -> st.SearchStrategy[Schedule]:
    cron = st.sampled_from(
        ["* * * * * *", "*/7 * * * * *", "0 * * * * *", "*/2 * * * *", "30 2 * * *", "0 0 0 1 1 *", "0 0 * * *"]
    ).map(lambda e: CronSchedule(expression=e))
    interval = st.builds(
        IntervalSchedule,
        every_seconds=st.sampled_from([1.0, 2.5, 13.0, 60.0, 3600.0]),
        anchor=st.integers(-500, 500).map(lambda s: T0 + timedelta(seconds=s)),
    )
    date = st.integers(-400, 600).map(lambda s: DateSchedule(at=T0 + timedelta(seconds=s)))
    calendar = st.sampled_from(
        [
            CalendarSchedule(rule=CalendarRule(times=("00:00", "00:01", "02:30")), anchor=T0),
            CalendarSchedule(rule=CalendarRule(weekdays=(6, 7), times=("23:59:30",)), anchor=T0),
            CalendarSchedule(rrule="FREQ=MINUTELY;INTERVAL=3", anchor=T0),
        ]
    )
    return st.one_of(cron, interval, date, calendar)


@st.composite
def jobs(draw: st.DrawFn) -> JobState:
    window = draw(st.sampled_from([None, (-100, 200), (60, 400), (-600, -10)]))
    return job_state(
        at=T0,
        schedule=draw(schedules()),
        timezone=draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"])),
        jitter_seconds=draw(st.sampled_from([0.0, 0.0, 3.0, 40.0])),
        misfire=MisfirePolicy(
            policy=draw(st.sampled_from(["fire_all", "fire_latest", "skip"])),
            grace_seconds=draw(st.sampled_from([None, 5.0, 100.0])),
        ),
        start_at=None if window is None else T0 + timedelta(seconds=window[0]),
        end_at=None if window is None else T0 + timedelta(seconds=window[1]),
    )


# One step: a job event (by kind, on job n), or a look of the ticker some seconds later (`looked`: False for an
# outage, the ticker not having looked since its previous look).
Step = tuple[str, int, int]
EVENTS = ["create", "rename", "reschedule", "pause", "resume", "delete"]
steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(EVENTS), st.integers(0, 3), st.just(0)),
        st.tuples(st.sampled_from(["look", "look", "outage"]), st.just(0), st.sampled_from([0, 1, 3, 20, 90, 400])),
    ),
    min_size=1,
    max_size=25,
)


@dataclass
class Run:
    """Both indexes, fed the same events and looked at the same times."""

    whole: WholeJobIndex = field(default_factory=WholeJobIndex)
    compact: ScheduleIndex = field(default_factory=ScheduleIndex)
    states: dict[int, JobState] = field(default_factory=dict)
    versions: dict[int, int] = field(default_factory=dict)
    now: datetime = T0
    looked: datetime = T0

    def event(self, kind: str, n: int, new: JobState, data: st.DataObject) -> None:
        version = self.versions.get(n, 0) + 1
        known = self.states.get(n)
        changed: tuple[str, ...]
        if kind == "create":
            if known is not None:
                return
            cls: type[JobEvent] = JobCreated
            state, changed = new, ()
        elif known is None:
            return
        elif kind == "rename":
            cls, state, changed = JobUpdated, msgspec.structs.replace(known, name=f"v{version}"), ("name",)
        elif kind == "reschedule":
            cls, changed = JobUpdated, ("schedule",)
            state = msgspec.structs.replace(known, schedule=data.draw(schedules()))
        elif kind == "pause":
            cls, state, changed = JobPaused, msgspec.structs.replace(known, enabled=False), ()
        elif kind == "resume":
            cls, state, changed = JobResumed, msgspec.structs.replace(known, enabled=True), ()
        else:
            cls, state, changed = JobDeleted, known, ()
        fields = {"changed": changed} if cls is JobUpdated else {}
        event = cls(
            event_id=uuid.uuid4(), job_id=state.id, account_id=state.account_id, version=version,
            occurred_at=self.now, job=state, next_run_at=None, **fields,  # type: ignore[arg-type]
        )  # fmt: skip
        self.versions[n] = version
        self.states[n] = state
        self.whole.apply(event, self.now)
        self.compact.apply(timing_of(event), self.now, whole=lambda: state)

    def look(self, seconds: int, outage: bool) -> None:
        self.now += timedelta(seconds=seconds, milliseconds=1)
        looked = self.looked
        whole_due = self.whole.pop_due(self.now, GRACE, looked, self.now + LEAD)
        compact_due = self.compact.pop_due(self.now, GRACE, looked, self.now + LEAD)
        assert sorted((d.job.id, d.nominal_time, d.next_due) for d in whole_due) == sorted(
            (d.job.id, d.nominal_time, d.next_due) for d in compact_due
        )
        current = {state.id: state for state in self.states.values()}
        for d in compact_due:  # the state it carries, if any, is the job as it is
            assert d.state is None or d.state == current[d.job.id]
        whole_missed = self.whole.take_missed()
        compact_missed = self.compact.take_missed()
        assert sorted((m.job.id, m.nominal_time, m.policy, m.reason, m.more_missed) for m in whole_missed) == sorted(
            (m.job.id, m.nominal_time, m.policy, m.reason, m.more_missed) for m in compact_missed
        )
        assert self.whole.next_due() == self.compact.next_due()
        if not outage:
            self.looked = self.now


@settings(max_examples=150, deadline=None)
@given(first=st.lists(jobs(), min_size=4, max_size=4), script=steps, data=st.data())
def test_the_compact_index_fires_what_the_whole_job_index_fired(
    first: list[JobState], script: list[Step], data: st.DataObject
) -> None:
    run = Run()
    for kind, n, seconds in script:
        if kind in ("look", "outage"):
            run.look(seconds, outage=kind == "outage")
        else:
            run.event(kind, n, first[n], data)
    run.look(600, outage=False)


@settings(max_examples=60, deadline=None)
@given(states=st.lists(jobs(), min_size=1, max_size=6), behind=st.sampled_from([5, 60, 700]))
def test_jobs_taken_over_from_a_watermark_catch_up_the_same(states: list[JobState], behind: int) -> None:
    """A ticker taking a partition over indexes its jobs from the saved watermark: both indexes then fire and miss
    the same occurrences."""
    watermark = T0 + timedelta(seconds=30)
    now = watermark + timedelta(seconds=behind)
    whole, compact = WholeJobIndex(), ScheduleIndex()
    for state in states:
        created = JobCreated(
            event_id=uuid.uuid4(), job_id=state.id, account_id=state.account_id, version=1, occurred_at=T0,
            job=state, next_run_at=None,
        )  # fmt: skip
        looked = watermark - timedelta(seconds=state.jitter_seconds)
        whole.apply(created, looked, catch_up_from=looked)
        compact.apply(timing_of(created), looked, catch_up_from=looked)
    for _ in range(3):
        whole_due = whole.pop_due(now, GRACE, watermark, now + LEAD)
        compact_due = compact.pop_due(now, GRACE, watermark, now + LEAD)
        assert sorted((d.job.id, d.nominal_time) for d in whole_due) == sorted(
            (d.job.id, d.nominal_time) for d in compact_due
        )
        assert sorted((m.job.id, m.nominal_time) for m in whole.take_missed()) == sorted(
            (m.job.id, m.nominal_time) for m in compact.take_missed()
        )
        watermark, now = now + LEAD, now + timedelta(seconds=behind)
