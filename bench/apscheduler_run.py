"""APScheduler 3 running precision's workload in a process of its own, so that its CPU is measured the way the
system's is (the receiver stays in the benchmark's process, on both sides).

`python -m bench.apscheduler_run --jobs N --url URL --prefix P`: N cron jobs firing every second, each POSTing
`?id=<P>-<i>_<nominal Unix seconds>` to URL. It prints "ready" once the scheduler has started, and shuts down when a
line (or end of file) arrives on its standard input.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
from datetime import datetime

import aiohttp
import click
from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent  # type: ignore[import-untyped]
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

READY = "ready"


def job_ids(prefix: str, jobs: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(jobs)]


def occurrence(job_id: str, nominal: float) -> str:
    """The id a run reports to the receiver: the job and its nominal second."""
    return f"{job_id}_{nominal:.0f}"


async def _run(jobs: int, url: str, prefix: str) -> None:
    scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"misfire_grace_time": 60, "coalesce": False})
    nominal: dict[str, collections.deque[datetime]] = collections.defaultdict(collections.deque)

    def submitted(event: JobSubmissionEvent) -> None:
        nominal[event.job_id].extend(event.scheduled_run_times)

    scheduler.add_listener(submitted, EVENT_JOB_SUBMITTED)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

        async def fire(job_id: str) -> None:
            at = nominal[job_id].popleft()
            async with session.post(url, params={"id": occurrence(job_id, at.timestamp())}) as response:
                await response.read()

        for job_id in job_ids(prefix, jobs):
            scheduler.add_job(fire, "cron", second="*", id=job_id, args=[job_id])
        scheduler.start()
        print(READY, flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        finally:
            # Runs started after the window are cut short: not an error worth a traceback.
            logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
            scheduler.shutdown(wait=False)


@click.command()
@click.option("--jobs", type=int, required=True)
@click.option("--url", required=True)
@click.option("--prefix", required=True)
def main(jobs: int, url: str, prefix: str) -> None:
    asyncio.run(_run(jobs, url, prefix))


if __name__ == "__main__":
    main()
