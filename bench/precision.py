"""Workload 1, precision: N jobs each firing every second for S seconds; lateness is receiver arrival minus nominal
time. Run on this system and on APScheduler 3 (AsyncIOScheduler, each job an aiohttp POST) against the same kind of
receiver, one after the other on the same machine."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bench.receiver import TimestampingReceiver
from bench.stats import Precision, precision
from bench.system import System
from services.api.core.auth import mint_token
from shared.contracts.executions import occurrence_id

WARMUP_SECONDS = 5


def _window(seconds: int) -> tuple[float, float]:
    start = float(int(time.time()) + WARMUP_SECONDS)
    return start, start + seconds


async def run_scheduler(
    jobs: int, seconds: int, directory: Path, system_env: dict[str, str] | None = None
) -> Precision:
    receiver = await TimestampingReceiver().start()
    try:
        with System(directory, env=system_env) as system:
            account = uuid.uuid4()
            headers = {"Authorization": f"Bearer {mint_token(system.secret, accounts=[account])}"}
            ids = await _create_jobs(system.base_url, headers, account, jobs, receiver.url())
            start, end = _window(seconds)
            await asyncio.sleep(max(0.0, end - time.time()))
            expected = {
                occurrence_id(job, datetime.fromtimestamp(start + s, UTC)): start + s
                for job in ids
                for s in range(seconds)
            }
            # No new occurrences after the window; what is still queued drains, so late ones are told from lost.
            system.stop("ticker")
            await _drained(receiver, set(expected))
            return precision(expected, receiver.arrivals.calls)
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


async def run_apscheduler(jobs: int, seconds: int) -> Precision:
    """The same workload on APScheduler 3: cron jobs every second, each POSTing to the receiver."""
    receiver = await TimestampingReceiver().start()
    scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"misfire_grace_time": 60, "coalesce": False})
    nominal: dict[str, collections.deque[datetime]] = collections.defaultdict(collections.deque)

    def submitted(event: JobSubmissionEvent) -> None:
        nominal[event.job_id].extend(event.scheduled_run_times)

    scheduler.add_listener(submitted, EVENT_JOB_SUBMITTED)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

        async def fire(job_id: str) -> None:
            at = nominal[job_id].popleft()
            ident = f"{job_id}_{at.timestamp():.0f}"
            async with session.post(receiver.url(), params={"id": ident}) as response:
                await response.read()

        ids = [str(uuid.uuid4()) for _ in range(jobs)]
        for job_id in ids:
            scheduler.add_job(fire, "cron", second="*", id=job_id, args=[job_id])
        start, end = _window(seconds)
        scheduler.start()
        try:
            await asyncio.sleep(max(0.0, end - time.time() + 2))
        finally:
            # Runs started after the window are cut short: not an error worth a traceback.
            logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
            scheduler.shutdown(wait=False)
    await receiver.stop()
    expected = {f"{job_id}_{start + s:.0f}": start + s for job_id in ids for s in range(seconds)}
    return precision(expected, receiver.arrivals.calls)
