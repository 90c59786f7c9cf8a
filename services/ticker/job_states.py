"""The whole jobs of occurrences about to be published, read from the JOBS stream: the index holds most jobs' timing
only (services/ticker/schedule_index.py).

A job's latest event is its subject's last message, read with batched direct gets (one request per 1,000 jobs). The
occurrence is published with the job as it is then: the version indexed, or a later one that changed only what is
delivered (a name, a webhook, a body). A job deleted, paused or rescheduled since its occurrence was popped does not
fire it: the same as an occurrence published ahead and withdrawn when such a change arrives inside the fire lead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from uuid import UUID

import msgspec
from jetstreamext import BatchUnsupportedError, InvalidResponseError, NoMessagesError, get_last_msgs_for
from nats.js import JetStreamContext

from services.ticker.schedule_index import DueOccurrence, IndexedJob, MissedOccurrence
from shared.bus.job_store import NatsJobEventStore
from shared.contracts.codec import decode_job_event
from shared.contracts.jobs import JobDeleted, JobEvent
from shared.contracts.subjects import Names

log = logging.getLogger(__name__)

# The server answers a batched direct get with at most 1,000 messages, for at most 1,024 subjects.
READ_BATCH = 1000


async def read_jobs(js: JetStreamContext, names: Names, jobs: Sequence[IndexedJob]) -> dict[UUID, JobEvent]:
    """The latest event of each of `jobs`, by job id (absent: the job's subject has no message any more). Read
    again from the stream's leader, one by one: a job a batch did not answer for (the batch stops quietly at a
    timeout), and one read at an older version than indexed (direct gets may be answered by a replica behind)."""
    latest: dict[UUID, JobEvent] = {}
    for start in range(0, len(jobs), READ_BATCH):
        chunk = jobs[start : start + READ_BATCH]
        subjects = [names.job_subject(job.account_id, job.id) for job in chunk]
        try:
            async for msg in get_last_msgs_for(js, names.jobs_stream, subjects, batch=len(subjects)):
                if (event := _decoded(msg.subject or "", msg.data)) is not None:
                    latest[event.job_id] = event
        except NoMessagesError:
            continue
        except (BatchUnsupportedError, InvalidResponseError) as exc:  # the jobs are read one by one below
            log.warning("a batched read of %d jobs failed; reading them one by one: %s", len(chunk), exc)
    store = NatsJobEventStore(js, names)  # reads from the stream's leader
    for job in jobs:
        if ((event := latest.get(job.id)) is None or event.version < job.version) and (
            loaded := await store.load(job.id)
        ) is not None:
            latest[job.id] = loaded.event
    return latest


def with_state(occurrence: DueOccurrence, latest: JobEvent | None) -> DueOccurrence | None:
    """The occurrence with its whole job, or None when the job no longer fires it (deleted, paused or rescheduled
    since it was indexed)."""
    if occurrence.state is not None:
        return occurrence
    if latest is None or isinstance(latest, JobDeleted) or latest.version < occurrence.job_version:
        return None
    if latest.version == occurrence.job_version or occurrence.job.same_timing(latest.job):
        return replace(occurrence, state=latest.job, job_version=latest.version)
    return None


def missed_with_state(missed: MissedOccurrence, latest: JobEvent | None) -> MissedOccurrence | None:
    """The missed occurrence with the job it is recorded under (its last state, even deleted since), if any."""
    if missed.state is not None:
        return missed
    return None if latest is None else replace(missed, state=latest.job)


def _decoded(subject: str, data: bytes | None) -> JobEvent | None:
    try:
        return decode_job_event(data or b"")
    except msgspec.ValidationError as exc:
        log.error("ignoring undecodable job message on %s: %s", subject, exc)
        return None
