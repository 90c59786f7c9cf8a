"""The task executor turns a task function's run into an attempt outcome: its value, its exception with the
traceback, a timeout, or a result that is not JSON."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.contracts.executions import ExecutionRequested, occurrence_requests
from shared.contracts.jobs import TaskSpec
from shared.domain.attempt_outcomes import AttemptFailed, AttemptSucceeded
from shared.worker.app import TaskFunction
from shared.worker.task_executor import TaskExecutor
from tests.factories import NOW, job_state

pytestmark = pytest.mark.unit


def request(*args: Any, **kwargs: Any) -> ExecutionRequested:
    job = job_state(task=TaskSpec(name="tests.task", args=args, kwargs=kwargs))
    return occurrence_requests(job, job_version=1, nominal_time=NOW, occurred_at=NOW, next_run_at=None)[0]


async def run(function: Any, req: ExecutionRequested, timeout: float = 5.0) -> AttemptSucceeded | AttemptFailed:
    return await TaskExecutor(TaskFunction("tests.task", function, timeout)).execute(req, datetime.now(UTC))


async def test_an_async_task_returns_its_value_from_its_arguments() -> None:
    async def add(a: int, b: int = 0) -> dict[str, int]:
        return {"sum": a + b}

    outcome = await run(add, request(2, b=3))
    assert isinstance(outcome, AttemptSucceeded) and outcome.result == {"sum": 5}


async def test_a_sync_task_that_raises_fails_with_its_traceback() -> None:
    def broken() -> None:
        raise KeyError("missing")

    outcome = await run(broken, request())
    assert isinstance(outcome, AttemptFailed)
    assert outcome.error == "KeyError: 'missing'" and not outcome.timed_out
    assert outcome.traceback is not None and "broken" in outcome.traceback


async def test_a_task_over_its_time_limit_times_out() -> None:
    outcome = await run(asyncio.Event().wait, request(), timeout=0.01)
    assert isinstance(outcome, AttemptFailed) and outcome.timed_out
    assert outcome.error == "task did not finish within 0.01 s"


async def test_a_result_that_is_not_json_is_a_failure() -> None:
    outcome = await run(lambda: object(), request())
    assert isinstance(outcome, AttemptFailed) and outcome.error.startswith("the task's result is not JSON")


async def test_a_request_without_a_task_is_refused() -> None:
    no_task = job_state()
    req = occurrence_requests(no_task, job_version=1, nominal_time=NOW, occurred_at=NOW, next_run_at=None)[0]
    with pytest.raises(ValueError, match="names no task"):
        await run(lambda: None, req)
