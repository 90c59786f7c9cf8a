"""What runs one attempt of a kind of target (a webhook call, a task): the runtime records whatever it reports."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from shared.contracts.executions import ExecutionRequested
from shared.domain.attempt_outcomes import AttemptOutcome


class Executor(Protocol):
    """Runs one attempt of a request and reports its outcome; never raises for a failure of the target itself."""

    @property
    def records_started_first(self) -> bool:
        """True: `started` is stored before the attempt begins (a task may run long). False: it is recorded while
        the attempt runs, so the attempt leaves at its instant (a webhook)."""
        ...

    async def execute(self, request: ExecutionRequested, started_at: datetime) -> AttemptOutcome:
        """Run the attempt that began at `started_at`."""
        ...
