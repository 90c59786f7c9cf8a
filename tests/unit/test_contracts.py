"""Event contracts: frozen, tagged, and stable on the wire."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from shared.contracts.codec import decode_execution_event, decode_job_event, encode
from shared.contracts.executions import ExecutionRequested, execution_id, occurrence_id
from shared.contracts.jobs import WebhookAdded, WebhookSpec
from tests.factories import NOW, job_created, job_state

pytestmark = pytest.mark.unit


def test_job_event_round_trips_with_tag() -> None:
    state = job_state()
    hook = WebhookSpec(id=uuid.uuid4(), url="http://x", created_at=NOW, updated_at=NOW)
    event = WebhookAdded(
        event_id=uuid.uuid4(),
        job_id=state.id,
        account_id=state.account_id,
        version=2,
        occurred_at=NOW,
        job=msgspec.structs.replace(state, webhooks=(hook,)),
        next_run_at=None,
        webhook_id=hook.id,
    )
    raw = encode(event)
    assert msgspec.json.decode(raw)["event_type"] == "WebhookAdded"
    assert decode_job_event(raw) == event


def test_events_are_frozen() -> None:
    event = job_created()
    with pytest.raises(AttributeError):
        event.version = 2  # type: ignore[misc]


def test_foreign_payload_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_job_event(b'{"event_type": "Nope"}')
    with pytest.raises(msgspec.ValidationError):
        decode_execution_event(b'{"event_type": "JobCreated"}')


def test_occurrence_and_execution_ids_are_deterministic() -> None:
    job_id = uuid.uuid4()
    occ = occurrence_id(job_id, NOW)
    assert occ == occurrence_id(job_id, NOW)
    assert occ != occurrence_id(job_id, datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    hook = uuid.uuid4()
    assert execution_id(occ, hook, 1) == execution_id(occ, hook, 1)
    assert execution_id(occ, hook, 1) != execution_id(occ, hook, 2)
    assert execution_id(occ, hook, 1) != execution_id(occ, None, 1)


def test_execution_requested_round_trips() -> None:
    job_id, account = uuid.uuid4(), uuid.uuid4()
    occ = occurrence_id(job_id, NOW)
    event = ExecutionRequested(
        execution_id=execution_id(occ, None, 1),
        occurrence_id=occ,
        job_id=job_id,
        account_id=account,
        occurred_at=NOW,
        nominal_time=NOW,
        job_version=3,
        job_name="n",
        webhook=None,
        next_run_at=None,
    )
    assert decode_execution_event(encode(event)) == event
