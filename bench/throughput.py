"""Workload 2, throughput: R jobs each firing every second, for R stepped up, each step on a fresh system.

A step is sustained when every occurrence of the window reaches the receiver once, every one is recorded as a
success in the read model within a few seconds of the window's end, and lateness stays bounded (p99 under one
second: a pipeline that cannot keep up falls further behind every second, and its lateness grows without bound).
CPU time per process over the window shows where the bottleneck is; all of it (every process of the system, the
receiver and the load generator left out) divided by the executions that reached the receiver in the window is the
cost of one execution.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.cost import measure_cost
from bench.cpu import rounded
from bench.receiver import TimestampingReceiver
from bench.seed import create_jobs, job
from bench.stats import percentile
from bench.system import Layout, System
from shared.contracts.executions import occurrence_id

WARMUP_SECONDS = 12  # seeding a few thousand jobs takes a few seconds
RECORD_GRACE_SECONDS = 10
SUSTAINED_P99_SECONDS = 1.0


@dataclass(frozen=True)
class Throughput:
    rate: int
    seconds: int
    dispatchers: int
    expected: int
    delivered: int
    lost: int
    duplicated: int
    recorded: int
    delivered_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    recorded_lag_seconds: float | None
    sustained: bool
    # Requests that reached the receiver while the CPU was measured (the window), and all processes' CPU per one.
    executions_in_window: int
    cpu_ms_per_execution: float | None
    cpu_seconds: dict[str, float]
    # Arrivals in each second of the window (for the plot).
    per_second: list[int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _recorded(database_url: str, start: float, end: float) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        value = await conn.fetchval(
            "SELECT count(*) FROM executions WHERE status = 'success' AND nominal_time >= $1 AND nominal_time < $2",
            datetime.fromtimestamp(start, UTC),
            datetime.fromtimestamp(end, UTC),
        )
        return int(value)
    finally:
        await conn.close()


async def run_throughput(
    rate: int, seconds: int, directory: Path, dispatchers: int = 1, layout: Layout = "processes"
) -> Throughput:
    receiver = await TimestampingReceiver().start()
    try:
        with System(directory, dispatchers=dispatchers, layout=layout) as system:
            account = uuid.uuid4()
            now = datetime.now(UTC)
            # The jobs start firing with the window (start_at): no backlog from before it.
            start = float(int(time.time()) + WARMUP_SECONDS)
            end = start + seconds
            start_at = datetime.fromtimestamp(start, UTC)
            states = [
                job(account, f"throughput {i}", "* * * * * *", receiver.url(), now, start_at) for i in range(rate)
            ]
            await create_jobs(system.settings, states)
            cost = await measure_cost(system.cpu_snapshot, receiver, start, end)
            await asyncio.sleep(max(0.0, end - time.time()))  # the recorded lag counts from the window's end
            expected = {
                occurrence_id(s.id, datetime.fromtimestamp(start + k, UTC)): start + k
                for s in states
                for k in range(seconds)
            }
            # Wait for the window's occurrences to be delivered and recorded (or for the grace to run out).
            deadline = end + max(RECORD_GRACE_SECONDS, seconds)
            recorded, recorded_at = 0, None
            while time.time() < deadline:
                recorded = await _recorded(system.settings.database_url, start, end)
                if recorded >= len(expected):
                    recorded_at = time.time()
                    break
                await asyncio.sleep(0.25)
    finally:
        await receiver.stop()
    calls = [(i, t) for i, t in receiver.arrivals.calls if i in expected]
    counts = Counter(i for i, _ in calls)
    first: dict[str, float] = {}
    for ident, at in calls:
        first.setdefault(ident, at)
    lateness = [(first[i] - nominal) * 1000 for i, nominal in expected.items() if i in first]
    per_second = Counter(int(at - start) for at in first.values())
    p99 = percentile(lateness, 0.99)
    lost = len(expected) - len(first)
    recorded_lag = round(recorded_at - end, 2) if recorded_at is not None else None
    span = max(first.values()) - start if first else float(seconds)
    return Throughput(
        rate=rate,
        seconds=seconds,
        dispatchers=dispatchers,
        expected=len(expected),
        delivered=len(first),
        lost=lost,
        duplicated=sum(n - 1 for n in counts.values()),
        recorded=recorded,
        delivered_per_second=round(len(first) / max(span, float(seconds)), 1),
        p50_ms=round(percentile(lateness, 0.5), 1),
        p99_ms=round(p99, 1),
        max_ms=round(max(lateness), 1) if lateness else float("nan"),
        recorded_lag_seconds=recorded_lag,
        sustained=lost == 0 and recorded_at is not None and recorded_lag is not None
        and recorded_lag <= RECORD_GRACE_SECONDS and p99 <= SUSTAINED_P99_SECONDS * 1000,
        executions_in_window=cost.executions,
        cpu_ms_per_execution=cost.ms_per_execution,
        cpu_seconds=rounded(cost.cpu_seconds, 1),
        per_second=[per_second.get(k, 0) for k in range(int(span) + 1)],
    )  # fmt: skip
