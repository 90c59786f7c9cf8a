"""What users import comes from the top-level `scheduler` package: the worker library and the event contracts."""

from __future__ import annotations

import pytest

import scheduler.contracts
import scheduler.worker
import shared.contracts.codec
import shared.worker
from shared.contracts.executions import ExecutionEvent
from shared.contracts.jobs import JobEvent

pytestmark = pytest.mark.unit


def test_the_worker_library_is_scheduler_worker() -> None:
    assert scheduler.worker.Worker is shared.worker.Worker
    worker = scheduler.worker.Worker("reports", concurrency=2)

    @worker.task("tasks.report")
    def report() -> int:
        return 3

    assert worker.tasks["tasks.report"] == scheduler.worker.TaskFunction("tasks.report", report, worker.timeout)
    assert set(scheduler.worker.__all__) == {"Settings", "SettingsError", "TaskFunction", "Worker", "load_settings"}
    assert all(getattr(scheduler.worker, name).__doc__ for name in scheduler.worker.__all__)


def test_the_contracts_name_every_event_type_and_decode_them() -> None:
    exported = {getattr(scheduler.contracts, name) for name in scheduler.contracts.__all__}
    assert set(JobEvent.__args__) | set(ExecutionEvent.__args__) <= exported
    assert scheduler.contracts.decode_execution_event is shared.contracts.codec.decode_execution_event


def test_the_events_command_module_is_still_the_command() -> None:
    import scheduler.events

    assert callable(scheduler.events.tail)
