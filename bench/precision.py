"""Workload 1, precision: N jobs each firing every second for S seconds; lateness is receiver arrival minus nominal
time. Run on this system and on APScheduler 3 (AsyncIOScheduler, each job an aiohttp POST, in a process of its own)
against the same kind of receiver, one after the other on the same machine.

Both sides also report their CPU over the window: every process of the system (services or `scheduler dev` with its
children, nats-server, PostgreSQL with its backends), and APScheduler's process, per execution that reached the
receiver in the window. The receiver runs in the benchmark's own process on both sides and is charged to neither.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.apscheduler_run import READY, job_ids, occurrence
from bench.cost import Cost, measure_cost
from bench.cpu import snapshot
from bench.receiver import TimestampingReceiver
from bench.stats import Precision, precision
from bench.system import Layout, System
from services.api.core.auth import mint_token
from shared.contracts.executions import occurrence_id

WARMUP_SECONDS = 5
APSCHEDULER_START_SECONDS = 60
APSCHEDULER_STOP_SECONDS = 30


@dataclass(frozen=True)
class Side:
    lateness: Precision
    cost: Cost

    def as_dict(self) -> dict[str, Any]:
        return self.lateness.as_dict() | self.cost.as_dict()


def _window(seconds: int) -> tuple[float, float]:
    start = float(int(time.time()) + WARMUP_SECONDS)
    return start, start + seconds


async def run_scheduler(
    jobs: int, seconds: int, directory: Path, system_env: dict[str, str] | None = None, layout: Layout = "processes"
) -> Side:
    receiver = await TimestampingReceiver().start()
    try:
        with System(directory, env=system_env, layout=layout) as system:
            account = uuid.uuid4()
            headers = {"Authorization": f"Bearer {mint_token(system.secret, accounts=[account])}"}
            ids = await _create_jobs(system.base_url, headers, account, jobs, receiver.url())
            start, end = _window(seconds)
            cost = await measure_cost(system.cpu_snapshot, receiver, start, end)
            expected = {
                occurrence_id(job, datetime.fromtimestamp(start + s, UTC)): start + s
                for job in ids
                for s in range(seconds)
            }
            # The jobs keep firing (under `scheduler dev` there is no ticker of its own to stop); only the window's
            # occurrences count, and the benchmark waits for them: one that arrives late is late, not lost.
            await _drained(receiver, set(expected))
            return Side(precision(expected, receiver.arrivals.calls), cost)
    finally:
        await receiver.stop()


async def _drained(receiver: TimestampingReceiver, expected: set[str], quiet: float = 5.0) -> None:
    """Until every expected occurrence has arrived, or none has for `quiet` seconds."""
    last_count, last_change = -1, time.monotonic()
    while True:
        arrived = len({i for i, _ in receiver.arrivals.calls} & expected)
        if arrived == len(expected) or time.monotonic() - last_change > quiet:
            return
        if arrived != last_count:
            last_count, last_change = arrived, time.monotonic()
        await asyncio.sleep(0.25)


async def _create_jobs(base: str, headers: dict[str, str], account: uuid.UUID, n: int, url: str) -> list[uuid.UUID]:
    limiter = asyncio.Semaphore(16)

    async def one(session: aiohttp.ClientSession, i: int) -> uuid.UUID:
        async with limiter:
            body = {"account_id": str(account), "name": f"bench {i}", "schedule": "* * * * * *", "type": 1,
                    "enabled": False}  # fmt: skip
            async with session.post(f"{base}/api/jobs", json=body, headers=headers) as response:
                job = await response.json()
                assert response.status == 201, job
            hook = {"job_id": job["id"], "url": url, "method": "POST"}
            async with session.post(f"{base}/webhooks", json=hook, headers=headers) as response:
                assert response.status == 201, await response.text()
            async with session.patch(f"{base}/api/jobs/{job['id']}/enable", headers=headers) as response:
                assert response.status == 200, await response.text()
            return uuid.UUID(job["id"])

    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(one(session, i) for i in range(n))))


async def run_apscheduler(jobs: int, seconds: int) -> Side:
    """The same workload on APScheduler 3 (bench.apscheduler_run in its own process): cron jobs every second, each
    POSTing to the receiver."""
    receiver = await TimestampingReceiver().start()
    prefix = uuid.uuid4().hex[:12]
    command = ["-m", "bench.apscheduler_run", "--jobs", str(jobs), "--url", receiver.url(), "--prefix", prefix]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        if process.stdout is None:
            raise RuntimeError("APScheduler's process has no standard output")
        line = await asyncio.wait_for(process.stdout.readline(), APSCHEDULER_START_SECONDS)
        if line.decode().strip() != READY:
            raise RuntimeError(f"APScheduler's process did not start: {line!r}")
        root = {"apscheduler": psutil.Process(process.pid)}
        start, end = _window(seconds)
        cost = await measure_cost(lambda: snapshot(root, lambda name, _: name), receiver, start, end)
        await asyncio.sleep(max(0.0, end - time.time() + 2))
    finally:
        await _stop(process)
        await receiver.stop()
    expected = {occurrence(job_id, start + s): start + s for job_id in job_ids(prefix, jobs) for s in range(seconds)}
    return Side(precision(expected, receiver.arrivals.calls), cost)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """A line on its standard input stops it; killed if it does not."""
    if process.stdin is not None and process.returncode is None:
        try:
            process.stdin.write(b"stop\n")
            await process.stdin.drain()
            process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
    try:
        await asyncio.wait_for(process.wait(), APSCHEDULER_STOP_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
