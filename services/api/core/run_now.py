"""Running a job now, outside its schedule: one execution per target, marked manual so the schedule is untouched."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.api.core.api_errors import JobNotFoundError, ValidationFailedError
from services.api.core.auth import Principal
from shared.bus.executions import PublishRequested
from shared.bus.job_store import JobEventStore, load_live
from shared.contracts.executions import ExecutionRequested, occurrence_requests
from shared.contracts.jobs import TaskSpec


class RunNow:
    def __init__(
        self, store: JobEventStore, publish: PublishRequested, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._store = store
        self._publish = publish
        self._clock = clock

    async def run(
        self,
        principal: Principal,
        job_id: UUID,
        *,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> tuple[list[ExecutionRequested], int]:
        """The requested executions (the task's first, when there is one) and the last stream sequence."""
        loaded = await load_live(self._store, job_id)
        if loaded is None:
            raise JobNotFoundError(f"job {job_id} not found")
        job = loaded.event.job
        principal.check_account(job.account_id)
        task = job.task
        if args is not None or kwargs is not None:
            if task is None:
                raise ValidationFailedError("the job has no task to pass arguments to", field="arguments")
            task = TaskSpec(
                name=task.name,
                args=tuple(args) if args is not None else task.args,
                kwargs=kwargs if kwargs is not None else task.kwargs,
            )
        if task is None and not job.webhooks:
            raise ValidationFailedError("the job has nothing to run: no task and no webhook")
        now = self._clock()
        requests = occurrence_requests(
            job,
            job_version=loaded.event.version,
            nominal_time=now,
            occurred_at=now,
            next_run_at=loaded.event.next_run_at,
            manual=True,
            task=task,
        )
        requests.sort(key=lambda r: r.task is None)
        sequence = 0
        for request in requests:
            sequence = max(sequence, await self._publish(request))
        return requests, sequence
