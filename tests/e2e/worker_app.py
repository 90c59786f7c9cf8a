"""A worker for the task tests: `scheduler worker --app tests.e2e.worker_app:worker`."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from scheduler.worker import Worker

worker = Worker("test-worker", concurrency=4)


@worker.task("tests.add")
async def add(*numbers: int, **kwargs: Any) -> dict[str, Any]:
    return {"sum": sum(numbers), "kwargs": kwargs, "pid": os.getpid()}


@worker.task("tests.fail")
def fail(*_: Any, **__: Any) -> None:
    raise ValueError("this task always fails")


@worker.task("tests.slow", timeout=1)
async def slow(*_: Any, **__: Any) -> None:
    await asyncio.sleep(30)


@worker.task("tests.not_json")
def not_json(*_: Any, **__: Any) -> object:
    return object()


@worker.task("tests.sleepy")
async def sleepy(*_: Any, **__: Any) -> int:
    await asyncio.sleep(0.5)
    return os.getpid()
