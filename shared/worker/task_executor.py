"""The task executor: one call of a registered task function, bounded by its time limit, as an attempt outcome."""

from __future__ import annotations

import asyncio
import inspect
import traceback
from datetime import UTC, datetime

import msgspec

from shared.contracts.executions import ExecutionRequested
from shared.domain.attempt_outcomes import AttemptFailed, AttemptOutcome, AttemptSucceeded
from shared.worker.app import TaskFunction


class TaskExecutor:
    """Runs `task` (sync functions in a thread); any exception of the function is the attempt's failure."""

    # A task may run long: `started` is stored before it begins, so the history shows it running.
    records_started_first = True

    def __init__(self, task: TaskFunction) -> None:
        self._task = task

    async def execute(self, request: ExecutionRequested, started_at: datetime) -> AttemptOutcome:
        if request.task is None:
            raise ValueError(f"execution {request.execution_id} names no task")
        task = self._task
        args, kwargs = list(request.task.args), dict(request.task.kwargs)

        def failed(error: str, *, timed_out: bool = False, trace: str | None = None) -> AttemptFailed:
            return AttemptFailed(duration_ms=_since(started_at), error=error, timed_out=timed_out, traceback=trace)

        try:
            async with asyncio.timeout(task.timeout):
                if inspect.iscoroutinefunction(task.function):
                    value = await task.function(*args, **kwargs)
                else:
                    value = await asyncio.to_thread(task.function, *args, **kwargs)
        except TimeoutError:
            return failed(f"task did not finish within {task.timeout:g} s", timed_out=True)
        except Exception as exc:  # noqa: BLE001 - any failure of user code is the run's outcome
            return failed(f"{type(exc).__name__}: {exc}", trace=traceback.format_exc())
        try:
            msgspec.json.encode(value)
        except (TypeError, msgspec.EncodeError) as exc:
            return failed(f"the task's result is not JSON: {exc}")
        return AttemptSucceeded(duration_ms=_since(started_at), result=value)


def _since(started_at: datetime) -> int:
    return int((datetime.now(UTC) - started_at).total_seconds() * 1000)
