"""The projection of EXECUTIONS events: the statement each event type gives, its parameters, key and phase.

The guards in the statements (a transition only from the states it may follow, an insert that ignores a repeat) are
what make redelivered and out-of-order events harmless; the integration tests run them against Postgres.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from services.projector.batched_writes import Step, Write, statements
from services.projector.execution_projection import (
    DEAD_LETTERED,
    FINISHED,
    REQUESTED,
    RETRY_SCHEDULED,
    STARTED,
    execution_step,
)
from shared.contracts.executions import (
    ExecutionDeadLettered,
    ExecutionEvent,
    ExecutionFailed,
    ExecutionMissed,
    ExecutionRequested,
    ExecutionRetryScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    WebhookDisabledByReceiver,
    envelope_of,
    missed_execution_id,
    occurrence_id,
    occurrence_requests,
)
from shared.contracts.jobs import TaskSpec, WebhookSpec
from tests.factories import NOW, job_state

pytestmark = pytest.mark.unit

NOMINAL = NOW + timedelta(minutes=1)
STARTED_AT = NOMINAL + timedelta(seconds=1)
FINISHED_AT = STARTED_AT + timedelta(seconds=2)
HOOK = WebhookSpec(id=uuid.uuid4(), url="https://example.com/hook", created_at=NOW, updated_at=NOW)
STATE = job_state(webhooks=(HOOK,), timeout_seconds=7.0)


def requested(**fields: Any) -> ExecutionRequested:
    (request,) = occurrence_requests(
        STATE, job_version=3, nominal_time=NOMINAL, occurred_at=NOMINAL, next_run_at=NOMINAL + timedelta(minutes=1)
    )
    return msgspec.structs.replace(request, **fields)


REQUEST = requested()
COMMON = envelope_of(REQUEST)
DONE: dict[str, Any] = {"occurred_at": FINISHED_AT, "worker_id": "w1", "started_at": STARTED_AT}
DONE |= {"finished_at": FINISHED_AT, "duration_ms": 2000}


def only(step: Step | None) -> Write:
    assert step is not None
    (write,) = step.writes
    return write


def test_the_phases_follow_an_executions_life() -> None:
    assert REQUESTED < STARTED < FINISHED < RETRY_SCHEDULED < DEAD_LETTERED


def test_a_scheduled_request_queues_the_execution_and_moves_the_jobs_run_times() -> None:
    step = execution_step(REQUEST, 12)
    assert step is not None and (step.key, step.phase) == (REQUEST.execution_id, REQUESTED)
    insert, advance = step.writes
    assert "'queued'" in insert.sql and "ON CONFLICT DO NOTHING" in insert.sql  # a repeat inserts nothing
    assert insert.args == (
        REQUEST.execution_id,
        REQUEST.occurrence_id,
        STATE.id,
        STATE.account_id,
        HOOK.id,
        NOMINAL,
        1,
        NOMINAL,
        12,  # the execution's number: the stream sequence of its request
        False,
        False,
        7.0,
        None,  # no backfill requested it
    )
    assert "INSERT INTO job_runs" in advance.sql
    assert advance.args == (STATE.id, NOMINAL, NOMINAL + timedelta(minutes=1), 3)
    # An older occurrence arriving late moves neither the next run nor the last one back.
    assert "job_runs.last_scheduled_at < EXCLUDED.last_scheduled_at" in advance.sql
    assert "GREATEST(job_runs.last_run_at, EXCLUDED.last_run_at)" in advance.sql


def test_a_task_request_has_no_webhook() -> None:
    (request,) = occurrence_requests(
        job_state(task=TaskSpec(name="t")), job_version=1, nominal_time=NOMINAL, occurred_at=NOMINAL, next_run_at=None
    )
    step = execution_step(request, 1)
    assert step is not None and step.writes[0].args[4] is None


def test_a_run_on_demand_moves_only_the_last_run_time() -> None:
    step = execution_step(requested(manual=True), 5)
    assert step is not None and step.key == REQUEST.execution_id
    insert, ran = step.writes
    assert insert.args[9] is True  # manual
    assert ran.args == (STATE.id, NOMINAL)
    assert "next_run_at" in ran.sql and "DO UPDATE SET last_run_at = EXCLUDED.last_run_at" in ran.sql
    assert "WHERE job_runs.last_run_at < EXCLUDED.last_run_at" in ran.sql


@pytest.mark.parametrize("manual", [False, True])
def test_a_retry_is_no_new_run(manual: bool) -> None:
    retry = msgspec.structs.replace(REQUEST.next_attempt(FINISHED_AT), manual=manual)
    step = execution_step(retry, 20)
    assert step is not None and step.key == retry.execution_id
    (insert,) = step.writes
    assert insert.args[6] == 2  # attempt


def test_a_redrive_runs_alone_and_takes_the_earlier_attempts_off_the_dead_letter_list() -> None:
    redrive = REQUEST.next_attempt(FINISHED_AT, redrive=True)
    step = execution_step(redrive, 30)
    assert step is not None and (step.key, step.phase) == (None, REQUESTED)
    insert, redriven = step.writes
    assert insert.args[10] is True  # redrive
    assert redriven.args == (REQUEST.occurrence_id, HOOK.id, 2, NOMINAL)
    assert "SET status = 'failure'" in redriven.sql
    assert "attempt < $3 AND status = 'dead_letter'" in redriven.sql


def test_a_start_moves_a_queued_execution_to_running() -> None:
    event = ExecutionStarted(**COMMON, occurred_at=STARTED_AT, worker_id="w1", started_at=STARTED_AT)
    step = execution_step(event, 13)
    assert step is not None and (step.key, step.phase) == (REQUEST.execution_id, STARTED)
    write = only(step)
    assert write.args == (REQUEST.execution_id, STARTED_AT, "w1", NOMINAL)
    # Only from queued: a start that arrives after the result does not reopen the execution.
    assert "SET status = 'running'" in write.sql and "AND status = 'queued'" in write.sql


def test_a_success_finishes_the_execution_with_its_answer() -> None:
    event = ExecutionSucceeded(**COMMON, **DONE, response_code=200, response_body="ok\x00", result={"n": 1})
    step = execution_step(event, 14)
    assert step is not None and (step.key, step.phase) == (REQUEST.execution_id, FINISHED)
    write = only(step)
    assert write.args == (
        REQUEST.execution_id,
        "success",
        STARTED_AT,
        FINISHED_AT,
        2000,
        "w1",
        200,
        "ok\ufffd",  # Postgres text holds no NUL
        None,
        {"n": 1},
        None,
        NOMINAL,  # the row's partition
    )
    # A result without a start keeps the start it carries; a finished execution is never finished again.
    assert "started_at = COALESCE(started_at, $3)" in write.sql
    assert "AND status IN ('queued', 'running')" in write.sql


@pytest.mark.parametrize(("timed_out", "status"), [(False, "failure"), (True, "timed_out")])
def test_a_failure_finishes_the_execution_with_its_error(timed_out: bool, status: str) -> None:
    event = ExecutionFailed(
        **COMMON, **DONE, error="bad\x00", timed_out=timed_out, response_code=500, traceback="tb\x00"
    )
    write = only(execution_step(event, 15))
    assert write.args == (
        REQUEST.execution_id,
        status,
        STARTED_AT,
        FINISHED_AT,
        2000,
        "w1",
        500,
        None,
        "bad\ufffd",
        None,
        "tb\ufffd",
        NOMINAL,
    )


def test_a_scheduled_retry_records_when() -> None:
    retry_at = FINISHED_AT + timedelta(seconds=30)
    next_id = REQUEST.next_attempt(FINISHED_AT).execution_id
    event = ExecutionRetryScheduled(
        **COMMON, occurred_at=FINISHED_AT, retry_at=retry_at, delay_seconds=30, next_execution_id=next_id, reason="500"
    )
    step = execution_step(event, 16)
    assert step is not None and (step.key, step.phase) == (REQUEST.execution_id, RETRY_SCHEDULED)
    write = only(step)
    assert write.args == (REQUEST.execution_id, retry_at, NOMINAL) and "SET retry_at = $2" in write.sql


def test_a_dead_letter_follows_only_a_failed_attempt() -> None:
    event = ExecutionDeadLettered(**COMMON, occurred_at=FINISHED_AT, reason="out of attempts")
    step = execution_step(event, 17)
    assert step is not None and (step.key, step.phase) == (REQUEST.execution_id, DEAD_LETTERED)
    write = only(step)
    assert write.args == (REQUEST.execution_id, FINISHED_AT, NOMINAL)
    assert "SET status = 'dead_letter', dead_lettered_at = $2" in write.sql
    assert "status IN ('failure', 'timed_out')" in write.sql


def test_a_skip_closes_a_queued_execution_with_the_reason() -> None:
    event = ExecutionSkipped(**COMMON, occurred_at=STARTED_AT, reason="still running\x00")
    step = execution_step(event, 18)
    assert step is not None and (step.key, step.phase) == (REQUEST.execution_id, STARTED)
    write = only(step)
    assert write.args == (REQUEST.execution_id, "still running\ufffd", STARTED_AT, NOMINAL)
    assert "SET status = 'skipped'" in write.sql and "AND status = 'queued'" in write.sql


@pytest.mark.parametrize(("more", "note"), [(False, ""), (True, " (more were missed")])
def test_a_missed_occurrence_is_recorded_alone_unless_it_ran(more: bool, note: str) -> None:
    occurrence = occurrence_id(STATE.id, NOMINAL)
    event = ExecutionMissed(
        execution_id=missed_execution_id(occurrence),
        occurrence_id=occurrence,
        job_id=STATE.id,
        account_id=STATE.account_id,
        occurred_at=FINISHED_AT,
        nominal_time=NOMINAL,
        job_name=STATE.name,
        policy="skip",
        reason="no ticker from 00:00 to 01:00",
        more_missed=more,
    )
    step = execution_step(event, 19)
    assert step is not None and (step.key, step.phase) == (None, REQUESTED)
    write = only(step)
    assert write.args[:8] == (event.execution_id, occurrence, STATE.id, STATE.account_id, NOMINAL, 1, FINISHED_AT, 19)
    assert write.args[8].startswith("missed (skip): no ticker from 00:00 to 01:00" + note)
    assert "'missed'" in write.sql
    # An occurrence that was published before a crash ran: it has rows, and is not also recorded as missed.
    assert "WHERE NOT EXISTS (SELECT 1 FROM executions WHERE occurrence_id = $2)" in write.sql


def test_a_webhook_disabled_by_its_receiver_writes_nothing_here() -> None:
    event = WebhookDisabledByReceiver(**COMMON, occurred_at=FINISHED_AT, webhook_id=HOOK.id, reason="410 Gone")
    assert execution_step(event, 20) is None


def folded(*events: Any) -> tuple[Any, ...]:
    """The row one batch of `events` (an execution's request first) inserts: _INSERT_FOLDED's values."""
    steps = [execution_step(e, n) for n, e in enumerate(events, 12)]
    sent = list(statements(s for s in steps if s is not None))
    (insert,) = [s for s in sent if s.fallback]
    (row,) = insert.rows
    assert insert.many is not None and "ON CONFLICT DO NOTHING" in insert.many.sql and "RETURNING" in insert.many.sql
    # Where the row existed, the folded events apply as they are, with their guards.
    assert [s.key for s in insert.fallback] == [REQUEST.execution_id] * (len(events) - 1)
    return row


FOLDED = (
    "id", "occurrence_id", "job_id", "account_id", "webhook_id", "nominal_time", "status", "attempt", "created_at",
    "number", "manual", "redrive", "timeout_seconds", "worker_id", "started_at", "finished_at", "duration_ms",
    "response_code", "response_body", "error", "result", "traceback", "retry_at", "dead_lettered_at", "held",
    "backfill_id",
)  # fmt: skip
START = ExecutionStarted(**COMMON, occurred_at=STARTED_AT, worker_id="w0", started_at=STARTED_AT)
SUCCESS = ExecutionSucceeded(**COMMON, **DONE, response_code=200, response_body="ok", result=[1])
FAILURE = ExecutionFailed(**COMMON, **DONE, error="bad", timed_out=True, traceback="tb")


def test_a_request_and_its_result_in_one_batch_are_one_insert_of_the_final_row() -> None:
    row = dict(zip(FOLDED, folded(REQUEST, SUCCESS), strict=True))
    assert row == {
        "id": REQUEST.execution_id, "occurrence_id": REQUEST.occurrence_id, "job_id": STATE.id,
        "account_id": STATE.account_id, "webhook_id": HOOK.id, "nominal_time": NOMINAL, "status": "success",
        "attempt": 1, "created_at": NOMINAL, "number": 12, "manual": False, "redrive": False, "timeout_seconds": 7.0,
        "worker_id": "w1", "started_at": STARTED_AT, "finished_at": FINISHED_AT, "duration_ms": 2000,
        "response_code": 200, "response_body": "ok", "error": None, "result": [1], "traceback": None,
        "retry_at": None, "dead_lettered_at": None, "held": "queued",  # the counters had a row for it on the way
        "backfill_id": None,
    }  # fmt: skip


def test_the_backfill_that_requested_an_execution_is_written_with_it_alone_or_folded() -> None:
    backfill = uuid.uuid4()
    request = msgspec.structs.replace(REQUEST, backfill_id=backfill)
    step = execution_step(request, 12)
    assert step is not None and step.writes[0].args[-1] == backfill
    assert dict(zip(FOLDED, folded(request, SUCCESS), strict=True))["backfill_id"] == backfill


def test_a_folded_result_keeps_the_start_of_the_start_event_as_its_statement_does() -> None:
    row = dict(zip(FOLDED, folded(REQUEST, msgspec.structs.replace(START, started_at=NOMINAL), FAILURE), strict=True))
    assert (row["status"], row["started_at"], row["worker_id"], row["held"]) == (
        "timed_out",
        NOMINAL,
        "w1",
        "queued,running",
    )
    assert (row["error"], row["traceback"], row["result"]) == ("bad", "tb", None)


def test_folded_events_keep_their_guards() -> None:
    dead = ExecutionDeadLettered(**COMMON, occurred_at=FINISHED_AT, reason="out of attempts")
    skipped = ExecutionSkipped(**COMMON, occurred_at=STARTED_AT, reason="still running")
    retry_at = FINISHED_AT + timedelta(seconds=30)
    retry = ExecutionRetryScheduled(
        **COMMON, occurred_at=FINISHED_AT, retry_at=retry_at, delay_seconds=30, next_execution_id=uuid.uuid4(),
        reason="500",
    )  # fmt: skip

    def status(*events: Any) -> tuple[Any, ...]:
        row = dict(zip(FOLDED, folded(REQUEST, *events), strict=True))
        return row["status"], row["held"], row["retry_at"], row["dead_lettered_at"]

    assert status(SUCCESS, dead) == ("success", "queued", None, None)  # only a failed attempt is dead-lettered
    assert status(FAILURE, retry, dead) == ("dead_letter", "queued,timed_out", retry_at, FINISHED_AT)
    assert status(skipped, SUCCESS) == ("skipped", "queued", None, None)  # a skipped execution is not finished
    assert status(retry) == ("queued", "", retry_at, None)


def test_every_write_of_one_execution_has_a_set_based_form_with_the_same_guard() -> None:
    events: list[ExecutionEvent] = [
        REQUEST,
        START,
        SUCCESS,
        ExecutionDeadLettered(**COMMON, occurred_at=FINISHED_AT, reason="r"),
    ]
    for event in events:
        step = execution_step(event, 1)
        assert step is not None
        for write in step.writes:
            assert write.many is not None and "unnest(" in write.many.sql
            guard = write.sql.rsplit("WHERE", 1)[-1].strip() if "UPDATE executions" in write.sql else None
            if guard:
                guard = guard.replace("status", "e.status").replace("id = $1", "e.id = u.id")
                # The one-row form names the row's partition by a parameter, the set-based one by its array.
                guard = re.sub(r"\bnominal_time = \$\d+", "e.nominal_time = u.nominal_time", guard)
                assert guard.replace("AND nominal_time >=", "AND e.nominal_time >=") in write.many.sql
