"""The chain runner's choice of results: only recent successes and dead letters are looked at, so a projection
rebuilt from the start of the streams never fires the links of old results again (JetStream's duplicate window would
not drop those repeats)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.projector.chain_runner import ChainRunner, fires_on
from shared.contracts.executions import ExecutionDeadLettered, ExecutionSkipped, ExecutionSucceeded
from shared.contracts.subjects import Names

pytestmark = pytest.mark.unit


class Conn:
    """Records the queries made; no job has jobs after it."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.queries.append(sql)
        return []


def _envelope(at: datetime) -> dict[str, Any]:
    return {"execution_id": uuid.uuid4(), "occurrence_id": "o", "job_id": uuid.uuid4(), "account_id": uuid.uuid4(),
            "occurred_at": at}  # fmt: skip


def _succeeded(at: datetime) -> ExecutionSucceeded:
    return ExecutionSucceeded(**_envelope(at), worker_id="w", started_at=at, finished_at=at, duration_ms=1)


async def test_old_results_and_other_events_fire_nothing_and_cost_no_query() -> None:
    runner = ChainRunner(None, None, Names("t"), fresh_for_seconds=600)  # type: ignore[arg-type]
    now, conn = datetime.now(UTC), Conn()
    old = now - timedelta(seconds=601)
    skipped = ExecutionSkipped(**_envelope(now), reason="r")
    await runner.before_commit(conn, [_succeeded(old), ExecutionDeadLettered(**_envelope(old), reason="r"), skipped])
    assert conn.queries == []
    await runner.before_commit(conn, [_succeeded(now)])
    assert len(conn.queries) == 1, "a recent result: the linked jobs are read once for the batch"


def test_a_link_fires_on_its_outcome_or_on_either() -> None:
    assert fires_on("success", "success") and not fires_on("success", "failure")
    assert fires_on("failure", "failure") and fires_on("completion", "success") and fires_on("completion", "failure")
