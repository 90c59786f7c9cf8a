"""The job event store: one subject per job, optimistic concurrency on the subject's last sequence."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import APIError, NotFoundError

from shared.contracts.codec import decode_job_event, encode
from shared.contracts.jobs import JobDeleted, JobEvent
from shared.contracts.subjects import Names
from shared.observability import tracing

WRONG_LAST_SEQUENCE = 10071


class ConcurrencyError(Exception):
    """Someone else appended to the job since it was loaded."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """The latest event of a job and the stream sequence it sits at."""

    event: JobEvent
    sequence: int


class JobEventStore(Protocol):
    """Load the latest event of a job (or its first: how it was created); append one with an expected last
    sequence (0: must not exist)."""

    async def load(self, job_id: UUID) -> Loaded | None: ...

    async def first(self, job_id: UUID) -> Loaded | None: ...

    async def append(self, event: JobEvent, expected_sequence: int) -> int: ...


async def load_live(store: JobEventStore, job_id: UUID) -> Loaded | None:
    """The job's latest event, or None when it never existed or was deleted."""
    loaded = await store.load(job_id)
    return None if loaded is None or isinstance(loaded.event, JobDeleted) else loaded


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `append_to_latest` did: the job as it was loaded, the event appended (None: the decision was to change
    nothing) and the stream sequence to read the result back at."""

    loaded: Loaded
    event: JobEvent | None
    sequence: int


async def append_to_latest(
    store: JobEventStore, job_id: UUID, decide: Callable[[Loaded], JobEvent | None], attempts: int
) -> Outcome | None:
    """Load the job as it is now, decide its next event from it, and append that event expecting the job unchanged;
    when someone else appended in between, do it all again, up to `attempts` times, then raise ConcurrencyError.
    None: the job does not exist (or was deleted). `decide` may raise to refuse the change; it runs in a worker
    thread, so it must be pure (the job as loaded and the command in, an event out)."""
    for _ in range(attempts):
        loaded = await load_live(store, job_id)
        if loaded is None:
            return None
        # Off the event loop: a decision may compute a schedule's next run, which can take tens of milliseconds.
        event = await asyncio.to_thread(decide, loaded)
        if event is None:
            return Outcome(loaded, None, loaded.sequence)
        try:
            return Outcome(loaded, event, await store.append(event, loaded.sequence))
        except ConcurrencyError:
            continue
    raise ConcurrencyError(f"job {job_id} kept changing: {attempts} attempts lost the race")


class NatsJobEventStore:
    """JetStream implementation: the latest message of the job's subject is the job."""

    def __init__(self, js: JetStreamContext, names: Names, connected: Callable[[], bool] | None = None) -> None:
        self._js = js
        self._names = names
        self._connected = connected

    async def load(self, job_id: UUID) -> Loaded | None:
        subject = self._names.job_lookup_subject(job_id)
        return await self._read(job_id, self._js.get_last_msg(self._names.jobs_stream, subject))

    async def first(self, job_id: UUID) -> Loaded | None:
        subject = self._names.job_lookup_subject(job_id)
        return await self._read(job_id, self._js.get_msg(self._names.jobs_stream, seq=1, subject=subject, next=True))

    @staticmethod
    async def _read(job_id: UUID, get: Awaitable[RawStreamMsg]) -> Loaded | None:
        try:
            msg = await get
        except NotFoundError:
            return None
        if msg.data is None or msg.seq is None:
            raise RuntimeError(f"a message of job {job_id} came back without its data or sequence")
        return Loaded(decode_job_event(msg.data), msg.seq)

    async def append(self, event: JobEvent, expected_sequence: int) -> int:
        headers = {
            "Nats-Msg-Id": str(event.event_id),
            "Nats-Expected-Last-Subject-Sequence": str(expected_sequence),
        }
        subject = self._names.job_subject(event.account_id, event.job_id)
        if self._connected is not None and not self._connected():
            # nats-py would buffer the publish and send it after reconnecting, long after the caller gave up:
            # refuse now, so a failed command is one that did not happen.
            raise nats.errors.ConnectionReconnectingError
        try:
            with tracing.span(
                f"append {type(event).__name__}", tracing.PRODUCER, attributes={"job.id": str(event.job_id)}
            ):
                ack = await self._js.publish(subject, encode(event), headers=tracing.inject(headers))
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise ConcurrencyError(f"job {event.job_id} changed concurrently") from exc
            raise
        return ack.seq


class InMemoryJobEventStore:
    """Same contract, in memory: for unit tests of code that writes jobs."""

    def __init__(self) -> None:
        self._events: list[JobEvent] = []
        self._last: dict[UUID, int] = {}

    async def load(self, job_id: UUID) -> Loaded | None:
        seq = self._last.get(job_id)
        return None if seq is None else Loaded(self._events[seq - 1], seq)

    async def first(self, job_id: UUID) -> Loaded | None:
        seq = next((i for i, e in enumerate(self._events, 1) if e.job_id == job_id), None)
        return None if seq is None else Loaded(self._events[seq - 1], seq)

    async def append(self, event: JobEvent, expected_sequence: int) -> int:
        if self._last.get(event.job_id, 0) != expected_sequence:
            raise ConcurrencyError(f"job {event.job_id} changed concurrently")
        self._events.append(event)
        self._last[event.job_id] = len(self._events)
        return len(self._events)
