"""The attempt runtime records an attempt's events in order, through the recorder over the in-memory sink, and
retries a write through an outage with the same message id."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec
import pytest

from shared.attempts.memory_sink import InMemoryAttemptSink
from shared.attempts.recorder import AttemptRecorder
from shared.attempts.runtime import GONE_REASON, AttemptRuntime
from shared.contracts.executions import (
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionRequested,
    ExecutionRetryScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    occurrence_requests,
)
from shared.contracts.jobs import RetryPolicy, TaskSpec, WebhookSpec
from shared.contracts.timers import RetryTimer
from shared.delivery.backoff import backoff_seconds
from shared.domain.attempt_outcomes import AttemptFailed, AttemptOutcome, AttemptSucceeded
from tests.factories import NOW, job_state
from tests.waiting import eventually

pytestmark = pytest.mark.unit

WORKER = "tests@host:1"


@dataclass
class FakeExecutor:
    """Reports `outcome`, noting how many writes the sink had taken when the attempt began."""

    outcome: AttemptOutcome
    records_started_first: bool = False
    sink: InMemoryAttemptSink | None = None
    writes_when_started: list[int] = field(default_factory=list)

    async def execute(self, request: ExecutionRequested, started_at: datetime) -> AttemptOutcome:
        self.writes_when_started.append(len(self.sink.written) if self.sink else -1)
        return self.outcome


class Clock:
    """Each reading is a second after the previous one."""

    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


def webhook_request(max_attempts: int = 3, attempt: int = 1) -> ExecutionRequested:
    hook = WebhookSpec(id=uuid.uuid4(), url="https://example.com/hook", created_at=NOW, updated_at=NOW)
    job = job_state(webhooks=[hook], retry=RetryPolicy(max_attempts=max_attempts, base_delay_seconds=10))
    first = occurrence_requests(job, job_version=1, nominal_time=NOW, occurred_at=NOW, next_run_at=None)[0]
    return msgspec.structs.replace(first, attempt=attempt)


def task_request() -> ExecutionRequested:
    job = job_state(task=TaskSpec(name="tests.task"))
    return occurrence_requests(job, job_version=1, nominal_time=NOW, occurred_at=NOW, next_run_at=None)[0]


def runtime_over(sink: InMemoryAttemptSink, retry_for_seconds: float = 5.0) -> AttemptRuntime:
    recorder = AttemptRecorder(sink, retry_for_seconds=retry_for_seconds, pause_seconds=0)
    return AttemptRuntime(recorder, WORKER, clock=Clock())


def failed(**fields: object) -> AttemptFailed:
    return AttemptFailed(duration_ms=12, error="receiver answered HTTP 500", **fields)  # type: ignore[arg-type]


async def test_a_success_records_started_then_the_result() -> None:
    sink, request = InMemoryAttemptSink(), webhook_request()
    await runtime_over(sink).run(request, FakeExecutor(AttemptSucceeded(duration_ms=7, response_code=204)))
    base = request.execution_id
    assert [(w.what, w.key) for w in sink.written] == [("started", f"{base}:started"), ("succeeded", f"{base}:result")]
    started, succeeded = (w.value for w in sink.written)
    assert isinstance(started, ExecutionStarted) and isinstance(succeeded, ExecutionSucceeded)
    assert (succeeded.worker_id, succeeded.duration_ms, succeeded.response_code) == (WORKER, 7, 204)
    assert succeeded.started_at == started.started_at < succeeded.finished_at


async def test_a_webhook_leaves_before_started_is_stored_and_a_task_after() -> None:
    sink = InMemoryAttemptSink()
    webhook = FakeExecutor(AttemptSucceeded(duration_ms=1), records_started_first=False, sink=sink)
    await runtime_over(sink).run(webhook_request(), webhook)
    task = FakeExecutor(AttemptSucceeded(duration_ms=1, result={"ok": True}), records_started_first=True, sink=sink)
    await runtime_over(sink).run(task_request(), task)
    assert (webhook.writes_when_started, task.writes_when_started) == ([0], [3])
    assert sink.kinds == ["started", "succeeded", "started", "succeeded"]
    result = sink.written[-1].value
    assert isinstance(result, ExecutionSucceeded) and result.result == {"ok": True}


async def test_a_failure_before_the_last_attempt_is_published_then_its_timer_then_the_retry() -> None:
    sink, request = InMemoryAttemptSink(), webhook_request()
    await runtime_over(sink).run(request, FakeExecutor(failed(response_code=500, response_body="no")))
    base = request.execution_id
    following = request.next_attempt(NOW)
    assert [(w.what, w.key) for w in sink.written] == [
        ("started", f"{base}:started"),
        ("failed", f"{base}:result"),
        ("timer", str(following.execution_id)),
        ("retry_scheduled", f"{base}:retry"),
    ]
    failure, timer, scheduled = (w.value for w in sink.written[1:])
    assert isinstance(failure, ExecutionFailed) and isinstance(timer, RetryTimer)
    assert isinstance(scheduled, ExecutionRetryScheduled)
    assert (failure.response_code, failure.response_body, failure.error) == (500, "no", "receiver answered HTTP 500")
    assert scheduled.delay_seconds == backoff_seconds(request.retry, 1, request.execution_id) == 10
    assert timer.due_at == scheduled.retry_at == failure.finished_at + timedelta(seconds=10)
    assert (timer.request.attempt, timer.request.execution_id) == (2, scheduled.next_execution_id)
    assert timer.request.execution_id == following.execution_id


async def test_the_last_attempt_is_dead_lettered_without_a_timer() -> None:
    sink, request = InMemoryAttemptSink(), webhook_request(max_attempts=2, attempt=2)
    await runtime_over(sink).run(request, FakeExecutor(failed()))
    assert sink.kinds == ["started", "failed", "dead_lettered"]
    dead = sink.written[-1]
    assert dead.key == f"{request.execution_id}:dead"
    assert isinstance(dead.value, ExecutionDeadLettered) and dead.value.reason == "receiver answered HTTP 500"


async def test_410_disables_the_webhook_before_the_failure_and_never_retries() -> None:
    sink, request = InMemoryAttemptSink(), webhook_request()
    assert request.webhook is not None
    await runtime_over(sink).run(request, FakeExecutor(failed(response_code=410)))
    assert sink.kinds == ["started", "disable_webhook", "failed", "dead_lettered"]
    assert (sink.written[1].key, sink.written[1].value) == (str(request.webhook.id), GONE_REASON)


async def test_a_timeout_is_recorded_as_timed_out_and_retried() -> None:
    sink, request = InMemoryAttemptSink(), webhook_request()
    await runtime_over(sink).run(request, FakeExecutor(failed(timed_out=True)))
    assert sink.kinds == ["started", "timed_out", "timer", "retry_scheduled"]
    timed_out = sink.written[1].value
    assert isinstance(timed_out, ExecutionFailed) and timed_out.timed_out


async def test_retry_after_sets_the_delay() -> None:
    sink = InMemoryAttemptSink()
    await runtime_over(sink).run(webhook_request(), FakeExecutor(failed(response_code=503, retry_after="120")))
    scheduled = sink.written[-1].value
    assert isinstance(scheduled, ExecutionRetryScheduled) and scheduled.delay_seconds == 120


async def test_a_write_that_fails_twice_is_retried_with_the_same_message_id() -> None:
    sink, request = InMemoryAttemptSink(), task_request()
    sink.fail_next(2)
    await runtime_over(sink).run(request, FakeExecutor(AttemptSucceeded(duration_ms=3), records_started_first=True))
    base = request.execution_id
    assert sink.attempts == [f"{base}:started"] * 3 + [f"{base}:result"]
    assert sink.kinds == ["started", "succeeded"]


async def test_a_write_still_failing_after_the_bound_raises() -> None:
    sink = InMemoryAttemptSink()
    sink.fail_next(1)
    with pytest.raises(ConnectionError):
        await runtime_over(sink, retry_for_seconds=0).run(task_request(), FakeExecutor(AttemptSucceeded(duration_ms=1)))


async def test_a_redelivered_attempt_records_nothing_twice() -> None:
    sink, request = InMemoryAttemptSink(), webhook_request()
    runtime = runtime_over(sink)
    await runtime.run(request, FakeExecutor(failed()))
    await runtime.run(request, FakeExecutor(failed()))
    assert sink.kinds == ["started", "failed", "timer", "retry_scheduled"]


async def test_skips_are_recorded_with_their_reason() -> None:
    sink, request = InMemoryAttemptSink(), webhook_request()
    await runtime_over(sink).skip_by_overlap(request, "still running")
    assert [(w.what, w.key) for w in sink.written] == [("skipped", f"{request.execution_id}:skipped")]
    skipped = sink.written[0].value
    assert isinstance(skipped, ExecutionSkipped) and skipped.reason == "still running"


class GatedExecutor:
    """A webhook attempt that runs until `gate` opens."""

    records_started_first = False

    def __init__(self, outcome: AttemptOutcome) -> None:
        self.outcome = outcome
        self.gate = asyncio.Event()
        self.began = asyncio.Event()

    async def execute(self, request: ExecutionRequested, started_at: datetime) -> AttemptOutcome:
        self.began.set()
        await self.gate.wait()
        return self.outcome


def thresholded(sink: InMemoryAttemptSink, seconds: float) -> AttemptRuntime:
    recorder = AttemptRecorder(sink, retry_for_seconds=5.0, pause_seconds=0)
    return AttemptRuntime(recorder, WORKER, clock=Clock(), started_after_seconds=seconds)


async def test_a_quick_webhook_attempt_is_recorded_by_its_result_alone() -> None:
    sink, request = InMemoryAttemptSink(), webhook_request()
    await thresholded(sink, 30).run(request, FakeExecutor(AttemptSucceeded(duration_ms=7, response_code=204)))
    assert [(w.what, w.key) for w in sink.written] == [("succeeded", f"{request.execution_id}:result")]
    succeeded = sink.written[0].value
    assert isinstance(succeeded, ExecutionSucceeded)
    assert (succeeded.worker_id, succeeded.response_code) == (WORKER, 204)
    assert succeeded.started_at < succeeded.finished_at


async def test_a_quick_failure_still_leads_to_its_retry() -> None:
    sink = InMemoryAttemptSink()
    await thresholded(sink, 30).run(webhook_request(), FakeExecutor(failed(response_code=500)))
    assert sink.kinds == ["failed", "timer", "retry_scheduled"]


async def test_a_webhook_attempt_past_the_threshold_records_started_while_it_runs_then_its_result() -> None:
    sink, request = InMemoryAttemptSink(), webhook_request()
    executor = GatedExecutor(AttemptSucceeded(duration_ms=1500))
    run = asyncio.create_task(thresholded(sink, 0.01).run(request, executor))
    await executor.began.wait()
    await eventually(lambda: sink.written, timeout=5, what="started, while the attempt runs")
    assert sink.kinds == ["started"] and not run.done()
    executor.gate.set()
    await run
    assert sink.kinds == ["started", "succeeded"]
    started, succeeded = (w.value for w in sink.written)
    assert isinstance(started, ExecutionStarted) and isinstance(succeeded, ExecutionSucceeded)
    assert started.started_at == succeeded.started_at


async def test_a_started_that_cannot_be_stored_lets_the_attempt_end_before_the_error_goes_up() -> None:
    sink = InMemoryAttemptSink()
    sink.fail_next(1)
    executor = GatedExecutor(AttemptSucceeded(duration_ms=1500))
    recorder = AttemptRecorder(sink, retry_for_seconds=0, pause_seconds=0)
    runtime = AttemptRuntime(recorder, WORKER, clock=Clock(), started_after_seconds=0.01)
    run = asyncio.create_task(runtime.run(webhook_request(), executor))
    await executor.began.wait()
    await eventually(lambda: sink.attempts, timeout=5, what="the write of started, tried past the threshold")
    await asyncio.sleep(0)  # the recorder's error has had its turn to surface, and it does not
    assert not run.done(), "the error waits for the attempt in flight"
    executor.gate.set()
    with pytest.raises(ConnectionError):
        await run
    assert sink.kinds == []


async def test_a_task_records_started_first_whatever_the_threshold() -> None:
    sink = InMemoryAttemptSink()
    task = FakeExecutor(AttemptSucceeded(duration_ms=1), records_started_first=True, sink=sink)
    await thresholded(sink, 30).run(task_request(), task)
    assert task.writes_when_started == [1]
    assert sink.kinds == ["started", "succeeded"]
