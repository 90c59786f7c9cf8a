"""What follows an attempt: the fate of a failure (final, retryable, webhook gone) and the retry or dead letter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contracts.executions import ExecutionRequested, occurrence_requests
from shared.contracts.jobs import RetryPolicy, TaskSpec, WebhookSpec
from shared.delivery.backoff import backoff_seconds
from shared.domain.attempt_outcomes import AttemptFailed, DeadLetter, FailureFate, Retry, after_failure, fate_of
from tests.factories import NOW, job_state

pytestmark = pytest.mark.unit


def webhook_request(retry: RetryPolicy | None = None, attempt: int = 1) -> ExecutionRequested:
    hook = WebhookSpec(id=uuid.uuid4(), url="https://example.com/hook", created_at=NOW, updated_at=NOW)
    job = job_state(webhooks=[hook], retry=retry or RetryPolicy())
    first = occurrence_requests(job, job_version=1, nominal_time=NOW, occurred_at=NOW, next_run_at=None)[0]
    return msgspec.structs.replace(first, attempt=attempt)


def task_request() -> ExecutionRequested:
    job = job_state(task=TaskSpec(name="tests.task"))
    return occurrence_requests(job, job_version=1, nominal_time=NOW, occurred_at=NOW, next_run_at=None)[0]


def failure(**fields: object) -> AttemptFailed:
    return AttemptFailed(duration_ms=5, error="it failed", **fields)  # type: ignore[arg-type]


# --- the fate of a failure


def test_410_from_a_webhook_is_final_and_disables_the_webhook() -> None:
    fate = fate_of(webhook_request(), failure(response_code=410), NOW)
    assert fate == FailureFate(retryable=False, disable_webhook=True)


def test_410_without_a_webhook_is_final_and_disables_nothing() -> None:
    assert fate_of(task_request(), failure(response_code=410), NOW) == FailureFate(retryable=False)


def test_a_request_that_cannot_be_sent_is_final_and_keeps_the_webhook() -> None:
    assert fate_of(webhook_request(), failure(unsendable=True), NOW) == FailureFate(retryable=False)


@pytest.mark.parametrize("fields", [{"response_code": 500}, {"timed_out": True}, {}, {"response_code": 302}])
def test_other_failures_retry_by_policy(fields: dict[str, object]) -> None:
    assert fate_of(webhook_request(), failure(**fields), NOW) == FailureFate()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0),
        ("soon", None),
        ("999999999", 86400.0),  # a receiver cannot push a retry beyond a day
    ],
)
def test_retry_after_is_honoured_in_seconds_from_now(header: str, seconds: float | None) -> None:
    fate = fate_of(webhook_request(), failure(response_code=503, retry_after=header), NOW)
    assert fate == FailureFate(retry_after=seconds)


# --- what follows the failure


def test_a_retryable_failure_before_the_last_attempt_schedules_the_next_by_backoff() -> None:
    request = webhook_request(RetryPolicy(max_attempts=3, base_delay_seconds=10, jitter=0.2), attempt=2)
    next_step = after_failure(request, FailureFate(), NOW)
    delay = backoff_seconds(request.retry, 2, request.execution_id)
    assert 16 <= delay <= 24  # 10 * 2^(2-1), jittered by +-20%
    assert next_step == Retry(
        request=request.next_attempt(NOW), due_at=NOW + timedelta(seconds=delay), delay_seconds=delay
    )
    assert isinstance(next_step, Retry)
    assert (next_step.request.attempt, next_step.request.occurrence_id) == (3, request.occurrence_id)
    assert next_step.request.execution_id != request.execution_id


def test_retry_after_replaces_the_backoff() -> None:
    next_step = after_failure(webhook_request(), FailureFate(retry_after=7.0), NOW)
    assert isinstance(next_step, Retry)
    assert (next_step.delay_seconds, next_step.due_at) == (7.0, NOW + timedelta(seconds=7))


def test_the_last_attempt_is_dead_lettered() -> None:
    request = webhook_request(RetryPolicy(max_attempts=3), attempt=3)
    assert after_failure(request, FailureFate(), NOW) == DeadLetter()


def test_a_final_failure_is_dead_lettered_on_its_first_attempt() -> None:
    assert after_failure(webhook_request(), FailureFate(retryable=False), NOW) == DeadLetter()


def test_no_dead_letter_when_the_fate_says_so() -> None:
    assert after_failure(webhook_request(), FailureFate(retryable=False, dead_letter=False), NOW) is None
    last = webhook_request(RetryPolicy(max_attempts=1))
    assert after_failure(last, FailureFate(dead_letter=False), NOW) is None


def test_deciding_twice_gives_the_same_retry() -> None:
    request = webhook_request(RetryPolicy(jitter=0.5))
    assert after_failure(request, FailureFate(), NOW) == after_failure(request, FailureFate(), NOW)


POLICIES = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 12),
    base_delay_seconds=st.floats(0, 3600),
    backoff=st.sampled_from(["exponential", "linear", "fixed"]),
    jitter=st.floats(0, 1),
    max_delay_seconds=st.floats(0, 86400),
)
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(policy=POLICIES, attempt=st.integers(1, 12), now=MOMENTS)
def test_a_retry_follows_by_one_attempt_within_the_cap_and_never_after_the_last(
    policy: RetryPolicy, attempt: int, now: datetime
) -> None:
    request = webhook_request(policy, attempt)
    next_step = after_failure(request, FailureFate(), now)
    if attempt >= policy.max_attempts:
        assert next_step == DeadLetter()
        return
    assert isinstance(next_step, Retry)
    assert next_step.request.attempt == attempt + 1
    assert next_step.request.occurrence_id == request.occurrence_id
    # The cap bounds the backoff before the jitter spreads it.
    assert 0 <= next_step.delay_seconds <= policy.max_delay_seconds * (1 + policy.jitter) * (1 + 1e-12)
    assert next_step.due_at == now + timedelta(seconds=next_step.delay_seconds)
