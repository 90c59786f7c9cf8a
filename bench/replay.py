"""Workload 5, replay: events per second of a full read-model rebuild (`scheduler replay`'s build phase).

A store of job events and executions (three events each) is written straight to JetStream, the live projector
catches up, then the replay builds fresh tables beside it. The rate is taken over the build, from the first event
applied to the last: the lease hand-over and swap that follow take a fixed few seconds whatever the size.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats

from bench.seed import create_jobs, execution_history, job
from bench.system import System
from services.projector.replay import replay
from shared.contracts.subjects import Names
from shared.settings import Settings


@dataclass(frozen=True)
class ReplayRate:
    events: int
    build_seconds: float
    events_per_second: float
    total_seconds: float
    live_projector_events_per_second: float
    # CPU used during the whole replay, by process: where the time goes.
    cpu_seconds: dict[str, float]
    # Disk per execution (three events each): the EXECUTIONS stream's bytes, and the executions table's with its
    # indexes (every partition), after the replay.
    stream_bytes_per_execution: float = 0.0
    table_bytes_per_execution: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _stream_ends(settings: Settings) -> dict[str, int]:
    names = Names(settings.namespace)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        return {s: (await js.stream_info(s)).state.last_seq for s in (names.jobs_stream, names.executions_stream)}
    finally:
        await nc.close()


async def wait_projected(settings: Settings, timeout: float = 1800) -> None:
    """Until the live projector's stored positions reach the streams' current ends."""
    ends = await _stream_ends(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                rows = await conn.fetch("SELECT stream, position FROM projector_positions")
            except asyncpg.UndefinedTableError:
                rows = []
            if all({r["stream"]: r["position"] for r in rows}.get(s, 0) >= end for s, end in ends.items() if end):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError("the projector did not catch up")
    finally:
        await conn.close()


async def run_replay(events: int, directory: Path) -> ReplayRate:
    """About `events` events: 1 job per 100 occurrences, 3 events per occurrence."""
    occurrences = events // 3
    with System(directory, services=("projector",), env={"SCHEDULER_LEASE_TTL_SECONDS": "2"}) as system:
        settings = system.settings
        states = [
            job(uuid.uuid4(), f"replayed {i}", "* * * * * *", "https://example.com/h", datetime.now(UTC))
            for i in range(max(1, occurrences // 100))
        ]
        written_at = time.monotonic()
        written = await create_jobs(settings, states) + await execution_history(settings, states, occurrences)
        await wait_projected(settings)
        live = written / (time.monotonic() - written_at)  # writing and projecting overlap: a lower bound
        to_build: list[int] = []  # the first `total`: the streams' ends when the replay began
        applied = 0
        built_at = 0.0

        def progress(n: int) -> None:
            nonlocal applied, built_at
            applied += n
            if applied <= to_build[0]:
                built_at = time.monotonic()

        cpu_before, own_before = system.cpu_seconds(), time.process_time()
        began = time.monotonic()
        report = await replay(settings, total=to_build.append, progress=progress)
        build = built_at - began
        cpu = {k: round(v - cpu_before.get(k, 0.0), 1) for k, v in system.cpu_seconds().items()}
        cpu["replay (this process)"] = round(time.process_time() - own_before, 1)
        stream_bytes, table_bytes = await disk_bytes(settings)
        return ReplayRate(
            events=to_build[0],
            build_seconds=round(build, 2),
            events_per_second=round(to_build[0] / build),
            total_seconds=round(report.seconds, 2),
            live_projector_events_per_second=round(live),
            cpu_seconds=cpu,
            stream_bytes_per_execution=round(stream_bytes / occurrences, 1),
            table_bytes_per_execution=round(table_bytes / occurrences, 1),
        )


async def disk_bytes(settings: Settings) -> tuple[int, int]:
    """The EXECUTIONS stream's bytes on disk, and the executions table's with its indexes (every partition)."""
    nc = await nats.connect(settings.nats_url)
    try:
        stream = (await nc.jetstream().stream_info(Names(settings.namespace).executions_stream)).state.bytes
    finally:
        await nc.close()
    conn = await asyncpg.connect(settings.database_url)
    try:
        table = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'executions'::regclass"
        )
    finally:
        await conn.close()
    return int(stream), int(table or 0)
