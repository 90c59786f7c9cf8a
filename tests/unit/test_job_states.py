"""Which job an occurrence popped without its whole job is published with, once the job is read."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from services.ticker.job_states import missed_with_state, with_state
from services.ticker.schedule_index import DueOccurrence, MissedOccurrence, ScheduleIndex
from shared.contracts.jobs import JobDeleted, JobEvent, JobPaused, JobState, JobUpdated
from shared.contracts.schedules import CronSchedule
from tests.factories import NOW, job_created, job_following, job_state, timing_of

pytestmark = pytest.mark.unit
HOURLY = CronSchedule(expression="0 * * * *")


def popped(state: JobState) -> DueOccurrence:
    """The job's first occurrence, popped by an index that holds no whole job."""
    index = ScheduleIndex(kept_for=timedelta(0))
    index.apply(timing_of(job_created(state)), NOW)
    (occurrence,) = index.pop_due(NOW + timedelta(seconds=1), timedelta(seconds=60))
    assert occurrence.state is None
    return occurrence


def test_the_version_indexed_is_published_as_read() -> None:
    state = job_state("* * * * * *")
    occurrence = popped(state)
    ready = with_state(occurrence, job_created(state))
    assert ready is not None and (ready.state, ready.job_version) == (state, 1)


def test_a_later_version_that_changed_only_what_is_delivered_is_published_as_it_is_now() -> None:
    state = job_state("* * * * * *")
    renamed = msgspec.structs.replace(state, name="renamed")
    ready = with_state(popped(state), job_following(JobUpdated, renamed, 2))
    assert ready is not None and (ready.state, ready.job_version) == (renamed, 2)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: job_following(JobPaused, msgspec.structs.replace(s, enabled=False), 2),
        lambda s: job_following(JobDeleted, s, 2),
        lambda s: job_following(
            JobUpdated, msgspec.structs.replace(s, schedule=CronSchedule(expression="0 * * * *")), 2
        ),
        lambda s: job_following(JobUpdated, msgspec.structs.replace(s, jitter_seconds=5.0), 2),
    ],
    ids=["paused", "deleted", "rescheduled", "jittered"],
)
def test_a_job_that_no_longer_fires_the_occurrence_publishes_nothing(change: object) -> None:
    state = job_state("* * * * * *")
    latest: JobEvent = change(state)  # type: ignore[operator]
    assert with_state(popped(state), latest) is None


def test_a_job_gone_from_the_stream_publishes_nothing() -> None:
    assert with_state(popped(job_state("* * * * * *")), None) is None


def test_a_missed_occurrence_is_recorded_under_the_jobs_last_state_even_deleted() -> None:
    state = job_state("* * * * * *")
    occurrence = popped(state)
    missed = MissedOccurrence(occurrence.job, 1, occurrence.nominal_time, "skip", "nobody looked")
    recorded = missed_with_state(missed, job_following(JobDeleted, state, 2))
    assert recorded is not None and recorded.state == state
    assert missed_with_state(missed, None) is None
