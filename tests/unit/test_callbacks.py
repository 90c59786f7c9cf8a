"""Result and failure callbacks on the attempt runtime (over the in-memory sink): which callbacks an outcome leads to,
in what order, with what body; their retry schedule, timers and wire shapes."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from services.dispatcher.callback_sender import callback_delay_seconds
from shared.attempts.callbacks import failure_callback, result_callback
from shared.attempts.memory_sink import InMemoryAttemptSink
from shared.contracts.callbacks import (
    CALLBACK_ATTEMPTS,
    CallbackRequested,
    callback_message_id,
    callback_webhook_id,
)
from shared.contracts.codec import decode_execution_event, encode
from shared.contracts.executions import (
    ExecutionRequested,
    ExecutionRetryScheduled,
    ExecutionSucceeded,
    occurrence_requests,
)
from shared.contracts.jobs import RetryPolicy, WebhookSpec
from shared.contracts.timers import RetryTimer, timer_name
from shared.domain.attempt_outcomes import AttemptSucceeded
from tests.factories import NOW, job_state
from tests.unit.test_attempt_runtime import FakeExecutor, failed, runtime_over

pytestmark = pytest.mark.unit

RESULTS = "https://example.com/results"
FAILURES = "https://example.com/failures"


def request_with_callbacks(max_attempts: int = 3, attempt: int = 1, **urls: str) -> ExecutionRequested:
    hook = WebhookSpec(id=uuid.uuid4(), url="https://example.com/hook", created_at=NOW, updated_at=NOW)
    job = job_state(webhooks=[hook], retry=RetryPolicy(max_attempts=max_attempts, base_delay_seconds=10), **urls)
    first = occurrence_requests(job, job_version=1, nominal_time=NOW, occurred_at=NOW, next_run_at=None)[0]
    return msgspec.structs.replace(first, attempt=attempt)


def callbacks_in(sink: InMemoryAttemptSink) -> list[CallbackRequested]:
    return [w.value for w in sink.written if isinstance(w.value, CallbackRequested)]


async def test_a_success_is_called_back_once_it_is_recorded() -> None:
    sink, request = InMemoryAttemptSink(), request_with_callbacks(callback_url=RESULTS, failure_callback_url=FAILURES)
    assert (request.callback_url, request.failure_callback_url) == (RESULTS, FAILURES)  # carried from the job
    await runtime_over(sink).run(request, FakeExecutor(AttemptSucceeded(duration_ms=7, response_code=204)))
    assert sink.kinds == ["started", "succeeded", "callback"]
    assert sink.written[-1].key == callback_message_id(request.execution_id, "result", 1, "requested")
    (callback,) = callbacks_in(sink)
    assert (callback.kind, callback.url, callback.callback_attempt) == ("result", RESULTS, 1)
    body = callback.body
    assert (body.status, body.final, body.response_code, body.duration_ms) == ("success", True, 204, 7)
    assert (body.id, body.occurrence_id, body.attempt, body.scheduled_at) == (
        request.execution_id,
        request.occurrence_id,
        1,
        NOW,
    )
    assert body.retry_at is None and body.error is None


async def test_a_failure_with_a_retry_says_when_the_next_attempt_is_due() -> None:
    sink, request = InMemoryAttemptSink(), request_with_callbacks(callback_url=RESULTS, failure_callback_url=FAILURES)
    await runtime_over(sink).run(request, FakeExecutor(failed(response_code=500, response_body="no")))
    assert sink.kinds == ["started", "failed", "timer", "retry_scheduled", "callback"]
    scheduled = next(w.value for w in sink.written if isinstance(w.value, ExecutionRetryScheduled))
    (callback,) = callbacks_in(sink)
    body = callback.body
    assert (body.status, body.final, body.error, body.response_body) == ("failure", False, scheduled.reason, "no")
    assert body.retry_at == scheduled.retry_at


async def test_the_last_failure_is_called_back_then_its_dead_letter() -> None:
    sink = InMemoryAttemptSink()
    request = request_with_callbacks(max_attempts=2, attempt=2, callback_url=RESULTS, failure_callback_url=FAILURES)
    await runtime_over(sink).run(request, FakeExecutor(failed(timed_out=True)))
    assert sink.kinds == ["started", "timed_out", "dead_lettered", "callback", "callback"]
    result, failure = callbacks_in(sink)
    assert (result.kind, result.url, result.body.status, result.body.final) == ("result", RESULTS, "timed_out", True)
    assert (failure.kind, failure.url, failure.body.status) == ("failure", FAILURES, "dead_letter")
    assert failure.body.dead_lettered_at is not None and failure.body.error == "receiver answered HTTP 500"
    assert sink.written[-1].key == callback_message_id(request.execution_id, "failure", 1, "requested")


async def test_only_the_failure_callback_when_the_job_names_only_that() -> None:
    sink = InMemoryAttemptSink()
    ok = request_with_callbacks(failure_callback_url=FAILURES)
    await runtime_over(sink).run(ok, FakeExecutor(AttemptSucceeded(duration_ms=1)))
    last = request_with_callbacks(max_attempts=1, failure_callback_url=FAILURES)
    await runtime_over(sink).run(last, FakeExecutor(failed()))
    assert [(c.kind, c.execution_id) for c in callbacks_in(sink)] == [("failure", last.execution_id)]


def test_a_callback_is_retried_with_doubling_waits_up_to_half_an_hour() -> None:
    waits = [callback_delay_seconds(10, n) for n in range(1, CALLBACK_ATTEMPTS)]
    assert waits == [10, 20, 40, 80, 160]
    assert callback_delay_seconds(600, 4) == 1800


def test_callbacks_keep_one_webhook_id_per_kind_and_their_own_timers() -> None:
    request = request_with_callbacks(callback_url=RESULTS)
    execution = request.execution_id
    assert callback_webhook_id(execution, "result") == f"{execution}.callback"
    assert callback_webhook_id(execution, "failure") == f"{execution}.failure"
    with_failure = msgspec.structs.replace(request, failure_callback_url=FAILURES)
    dead = failure_callback(with_failure, NOW, "gone")
    assert dead is not None
    names = {timer_name(request), timer_name(dead), timer_name(msgspec.structs.replace(dead, kind="result"))}
    assert len(names) == 3, "an attempt's retry, its result callback and its failure callback never share a timer"
    retried = msgspec.structs.replace(dead, callback_attempt=2)
    assert timer_name(retried) != timer_name(dead), "the next try's timer is not the one the ticker deletes"
    assert result_callback(msgspec.structs.replace(request, callback_url=None), _ok(), None) is None


def _ok() -> ExecutionSucceeded:  # a succeeded event, for the check that no URL means no callback
    return ExecutionSucceeded(
        execution_id=uuid.uuid4(),
        occurrence_id="o",
        job_id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        occurred_at=NOW,
        worker_id="w",
        started_at=NOW,
        finished_at=NOW,
        duration_ms=1,
    )


def test_callback_events_and_their_timers_decode_from_the_wire() -> None:
    callback = failure_callback(request_with_callbacks(failure_callback_url=FAILURES), NOW, "gone")
    assert callback is not None
    assert decode_execution_event(encode(callback)) == callback
    timers = msgspec.json.Decoder(RetryTimer)
    assert timers.decode(encode(RetryTimer(due_at=NOW, request=callback))).request == callback
    plain = request_with_callbacks()
    assert timers.decode(encode(RetryTimer(due_at=NOW, request=plain))).request == plain  # an execution's timer
