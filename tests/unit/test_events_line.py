"""`scheduler events tail`'s one-line rendering of an event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from scheduler.events import line
from shared.contracts.executions import ExecutionStarted
from tests.factories import job_created, job_state

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_job_event_line_has_no_execution_fields() -> None:
    text = line(job_created(job_state()))
    assert "JobCreated" in text
    assert "attempt" not in text and "None" not in text, text


@pytest.mark.parametrize(("attempt", "shown"), [(1, False), (2, True)])
def test_an_execution_event_line_shows_a_retry_attempt(attempt: int, shown: bool) -> None:
    event = ExecutionStarted(
        execution_id=uuid.uuid4(),
        occurrence_id="o",
        job_id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        attempt=attempt,
        occurred_at=NOW,
        worker_id="w",
        started_at=NOW,
    )
    assert ("attempt=2" in line(event)) is shown and "None" not in line(event)
