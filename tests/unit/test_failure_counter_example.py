"""The example subscriber's logic (examples/failure_counter.py) on FastStream's in-memory test broker: failed
attempts are counted per job, timed-out ones too, dead letters are kept and logged, and nothing else reaches it."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import pytest
from faststream.nats import TestNatsBroker

from examples.failure_counter import FailureBook, build
from scheduler.contracts import (
    ExecutionDeadLettered,
    ExecutionEvent,
    ExecutionFailed,
    ExecutionSucceeded,
    Names,
)
from shared.contracts.codec import encode
from shared.contracts.executions import SUBJECT_KINDS

NAMES = Names("example")
NOW = datetime(2026, 12, 1, tzinfo=UTC)
ACCOUNT = uuid.uuid4()


def envelope(job: uuid.UUID, attempt: int = 1) -> dict[str, object]:
    return {"execution_id": uuid.uuid4(), "occurrence_id": f"{job}_20261201T000000.000000Z", "job_id": job,
            "account_id": ACCOUNT, "attempt": attempt, "occurred_at": NOW}  # fmt: skip


def failed(job: uuid.UUID, attempt: int, timed_out: bool = False) -> ExecutionFailed:
    return ExecutionFailed(**envelope(job, attempt), worker_id="w", started_at=NOW, finished_at=NOW,  # type: ignore[arg-type]
                           duration_ms=5, error="HTTP 500", timed_out=timed_out)  # fmt: skip


async def publish(broker: TestNatsBroker, event: ExecutionEvent, kind: str | None = None) -> None:
    kind = kind or SUBJECT_KINDS[type(event)][0]
    subject = NAMES.execution_subject(kind, event.account_id, event.job_id)
    await broker.publish(encode(event), subject, stream=NAMES.executions_stream)


async def test_failures_are_counted_per_job_and_dead_letters_kept(caplog: pytest.LogCaptureFixture) -> None:
    book = FailureBook()
    app = build("nats://127.0.0.1:1", NAMES.namespace, book)  # the test broker never connects
    one, other = uuid.uuid4(), uuid.uuid4()
    dead = ExecutionDeadLettered(**envelope(one, 3), reason="HTTP 500 after 3 attempts")  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="failure_counter"):
        async with TestNatsBroker(app.broker) as broker:
            await publish(broker, failed(one, 1))
            await publish(broker, failed(one, 2, timed_out=True), "timed_out")
            await publish(broker, failed(one, 3))
            await publish(broker, failed(other, 1))
            await publish(broker, dead)
            # Neither a success nor a request is a result it follows.
            ok = ExecutionSucceeded(**envelope(other, 2), worker_id="w", started_at=NOW, finished_at=NOW,  # type: ignore[arg-type]
                                    duration_ms=5)  # fmt: skip
            await publish(broker, ok)
    assert book.failures == {one: 3, other: 1}
    assert book.dead_letters == [dead]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"dead letter: job {one}, occurrence {dead.occurrence_id}, after attempt 3: {dead.reason}"]


async def test_a_message_that_is_no_execution_event_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    book = FailureBook()
    app = build("nats://127.0.0.1:1", NAMES.namespace, book)
    job = uuid.uuid4()
    with caplog.at_level(logging.INFO, logger="failure_counter"):
        async with TestNatsBroker(app.broker) as broker:
            subject = NAMES.execution_subject("failed", ACCOUNT, job)
            await broker.publish(b'{"event_type": "Nonsense"}', subject, stream=NAMES.executions_stream)
            await publish(broker, failed(job, 1))  # and it goes on
    assert book.failures == {job: 1}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "no execution event" in errors[0], errors
