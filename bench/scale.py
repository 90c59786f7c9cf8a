"""Workload 3, scale: a store of N registered jobs (100,000 by default, 1,000,000 with the flag).

`burst` of them fire at second 0 of every minute (6-field `0 * * * * *`), the rest once a year, so one minute
boundary brings `burst` occurrences at once. Measured: the projector loading the seeded jobs on its own (started
once the stream is written), one ticker's start-up time (process start to its heartbeat reporting every job
indexed) and resident memory, the time to drain the boundary (last arrival at the receiver, and last success
recorded in the read model, after the boundary), api get and list latency (sequential requests) with that many jobs
in the read model; then four tickers sharing the partitions (each one's memory, the time until every partition is
held and indexed), the time until a SIGKILLed one's partitions are held and indexed by the other three, and one
ticker restarted alone (from the partitions' snapshots the first ticker left): its start-up and memory. The
boundary is measured once the dispatcher has delivered the backlog of the minutes since seeding (the every-minute
jobs fire late for each minute no ticker ran).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import nats
import nats.errors
import psutil
from nats.js.errors import KeyNotFoundError

from bench.receiver import TimestampingReceiver
from bench.replay import wait_projected
from bench.seed import create_jobs, job
from bench.stats import percentile
from bench.system import System
from scheduler.embedded import free_port
from services.api.core.auth import mint_token
from shared.bus.streams import ticker_bucket
from shared.contracts.executions import occurrence_id
from shared.contracts.subjects import PARTITIONS, Names
from shared.contracts.ticker import HEARTBEAT_KEY, Heartbeat
from shared.settings import Settings

API_SAMPLES = 300
SHARING_TICKERS = 4
# The boundary must leave the dispatcher time to connect after the ticker is up.
BOUNDARY_MARGIN_SECONDS = 10
# How long three tickers get to stop (SIGTERM) before they are killed.
STOP_SECONDS = 120


@dataclass(frozen=True)
class Scale:
    jobs: int
    burst: int
    seed_seconds: float
    projected_seconds: float
    projector_events_per_second: float
    ticker_startup_seconds: float
    ticker_rss_mib: float
    ticker_peak_rss_mib: float
    backlog_delivered_first: int
    burst_delivered: int
    burst_lost: int
    burst_drain_seconds: float | None
    burst_recorded_seconds: float | None
    burst_p50_ms: float
    burst_p99_ms: float
    get_p50_ms: float
    get_p99_ms: float
    list_p50_ms: float
    list_p99_ms: float
    shared_ready_seconds: float | None = None
    shared_rss_mib: list[float] | None = None
    shared_peak_rss_mib: list[float] | None = None
    failover_seconds: float | None = None
    lease_ttl_seconds: float | None = None
    sharing_stop_seconds: float | None = None
    restart_seconds: float | None = None
    restart_rss_mib: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _heartbeat_jobs(settings: Settings, since: datetime) -> int:
    nc = await nats.connect(settings.nats_url)
    try:
        try:
            kv = await ticker_bucket(nc.jetstream(), settings)
            entry = await kv.get(HEARTBEAT_KEY)
        except KeyNotFoundError:
            return -1
        except nats.errors.TimeoutError:  # the server is busy with the ticker's start: ask again
            return -1
        beat = msgspec.json.decode(entry.value or b"{}", type=Heartbeat)
        return beat.jobs if beat.at >= since else -1
    finally:
        await nc.close()


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def _latencies(session: aiohttp.ClientSession, urls: list[str], headers: dict[str, str]) -> list[float]:
    out = []
    for url in urls:
        began = time.perf_counter()
        async with session.get(url, headers=headers) as response:
            await response.read()
            assert response.status == 200, response.status
        out.append((time.perf_counter() - began) * 1000)
    return out


async def run_scale(jobs: int, burst: int, directory: Path) -> Scale:
    receiver = await TimestampingReceiver().start()
    try:
        with System(directory, services=("projector", "api")) as system:
            settings = system.settings
            account = uuid.uuid4()
            now = datetime.now(UTC)
            states = [
                job(account, f"scale {i}", "0 * * * * *" if i < burst else "0 0 0 1 1 *", receiver.url(), now)
                for i in range(jobs)
            ]
            system.stop("projector")  # measured loading the whole stream on its own, below
            began = time.monotonic()
            await create_jobs(settings, states)
            seeded = time.monotonic()
            system.start("projector")
            await wait_projected(settings)
            projected = time.monotonic()

            started_at = datetime.now(UTC)
            began_ticker = time.monotonic()
            ticker = system.start("ticker")
            while await _heartbeat_jobs(settings, started_at) < jobs:  # noqa: ASYNC110 (polling another process)
                await asyncio.sleep(0.2)
            startup = time.monotonic() - began_ticker
            rss = round(ticker.memory_info().rss / 2**20, 1)
            system.start("dispatcher")
            # The every-minute jobs fired late for every minute since they were seeded (no ticker ran then): the
            # boundary is measured once the dispatcher has delivered that backlog, not behind it.
            await _dispatcher_caught_up(settings, timeout=900)
            backlog = len(receiver.arrivals.calls)

            boundary = (int(time.time()) // 60 + 1) * 60
            if boundary - time.time() < BOUNDARY_MARGIN_SECONDS:
                boundary += 60
            nominal = datetime.fromtimestamp(boundary, UTC)
            expected = {occurrence_id(s.id, nominal) for s in states[:burst]}
            await asyncio.sleep(boundary - time.time())
            recorded_seconds = await _recorded_within(settings.database_url, nominal, burst, timeout=120)
            arrivals = [(i, t) for i, t in receiver.arrivals.calls if i in expected]
            first: dict[str, float] = {}
            for ident, at in arrivals:
                first.setdefault(ident, at)
            lateness = [(at - boundary) * 1000 for at in first.values()]
            peak = _peak_rss_mib(ticker.pid)

            headers = {"Authorization": f"Bearer {mint_token(system.secret, accounts=[account])}"}
            base = system.base_url
            picks = random.Random(1).sample(  # noqa: S311 (a sample, not a secret)
                states, min(API_SAMPLES, len(states))
            )
            async with aiohttp.ClientSession() as session:
                gets = await _latencies(session, [f"{base}/api/jobs/{s.id}" for s in picks], headers)
                lists = await _latencies(
                    session, [f"{base}/api/jobs?account_id={account}&limit=20"] * API_SAMPLES, headers
                )
            system.stop("ticker")  # hands its partitions back: the four take them at once
            sharing = await _tickers_sharing(system, jobs)
    finally:
        await receiver.stop()
    return Scale(
        jobs=jobs,
        burst=burst,
        seed_seconds=round(seeded - began, 1),
        projected_seconds=round(projected - seeded, 1),
        projector_events_per_second=round(jobs / (projected - seeded)),
        ticker_startup_seconds=round(startup, 1),
        ticker_rss_mib=rss,
        ticker_peak_rss_mib=peak,
        backlog_delivered_first=backlog,
        burst_delivered=len(first),
        burst_lost=burst - len(first),
        burst_drain_seconds=round(max(first.values()) - boundary, 2) if first else None,
        burst_recorded_seconds=recorded_seconds,
        burst_p50_ms=round(percentile(lateness, 0.5), 1),
        burst_p99_ms=round(percentile(lateness, 0.99), 1),
        get_p50_ms=round(percentile(gets, 0.5), 1),
        get_p99_ms=round(percentile(gets, 0.99), 1),
        list_p50_ms=round(percentile(lists, 0.5), 1),
        list_p99_ms=round(percentile(lists, 0.99), 1),
        **sharing,
    )


async def _ticker_gauges(session: aiohttp.ClientSession, port: int) -> dict[str, float] | None:
    """The ticker's partition and job gauges from its ops endpoint (None while it is not serving)."""
    try:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    except aiohttp.ClientError:
        return None
    wanted = ("partitions_held", "partitions_indexed", "jobs_indexed")
    gauges = {}
    for line in text.splitlines():
        for name in wanted:
            if line.startswith(f"scheduler_ticker_{name} "):
                gauges[name] = float(line.split()[1])
    return gauges if len(gauges) == len(wanted) else None


async def _until_shared(session: aiohttp.ClientSession, ports: list[int], jobs: int, timeout: float) -> float | None:
    """Seconds until the tickers on `ports` hold every partition between them, each with its partitions indexed,
    and index every job between them (None: not within `timeout`)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        gauges = [await _ticker_gauges(session, port) for port in ports]
        if all(g is not None for g in gauges):
            held = [g for g in gauges if g is not None]
            if (
                sum(g["partitions_held"] for g in held) == PARTITIONS
                and all(g["partitions_held"] == g["partitions_indexed"] > 0 for g in held)
                and sum(g["jobs_indexed"] for g in held) == jobs
            ):
                return round(time.monotonic() - began, 1)
        await asyncio.sleep(0.2)
    return None


async def _tickers_sharing(system: System, jobs: int) -> dict[str, Any]:
    """Four tickers started together: time until they share every partition and job, each one's memory; then one
    SIGKILLed, and the time until the other three hold and index its partitions."""
    ports = [free_port() for _ in range(SHARING_TICKERS)]
    began = time.monotonic()
    tickers = [
        system.start("ticker", {"SCHEDULER_OPS_PORT": str(port), "SCHEDULER_INSTANCE_ID": f"sharing-{n}"})
        for n, port in enumerate(ports)
    ]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        ready = await _until_shared(session, ports, jobs, timeout=600)
        ready_seconds = None if ready is None else round(time.monotonic() - began, 1)
        rss = [round(t.memory_info().rss / 2**20, 1) for t in tickers]
        peak = [_peak_rss_mib(t.pid) for t in tickers]
        tickers[0].kill()
        tickers[0].wait(30)
        failover = await _until_shared(session, ports[1:], jobs, timeout=600)
        # The other three stopped (their partitions handed back): one ticker restarted reads every partition's
        # snapshot and the events after it.
        stopping = time.monotonic()
        for ticker in tickers[1:]:
            ticker.terminate()
        for ticker in tickers[1:]:
            try:
                ticker.wait(STOP_SECONDS)
            except psutil.TimeoutExpired:
                ticker.kill()
        stop_seconds = round(time.monotonic() - stopping, 1)
        port = free_port()
        began = time.monotonic()
        alone = system.start("ticker", {"SCHEDULER_OPS_PORT": str(port), "SCHEDULER_INSTANCE_ID": "restarted"})
        restart = await _until_shared(session, [port], jobs, timeout=600)
        restart_seconds = None if restart is None else round(time.monotonic() - began, 1)
        restart_rss = round(alone.memory_info().rss / 2**20, 1)
    return {
        "sharing_stop_seconds": stop_seconds,
        "restart_seconds": restart_seconds,
        "restart_rss_mib": restart_rss,
        "shared_ready_seconds": ready_seconds,
        "shared_rss_mib": rss,
        "shared_peak_rss_mib": peak,
        "failover_seconds": failover,
        "lease_ttl_seconds": system.settings.lease_ttl_seconds,
    }


async def _dispatcher_caught_up(settings: Settings, timeout: float) -> None:
    """Wait until the dispatcher's consumer has nothing pending or in flight."""
    names = Names(settings.namespace)
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                info = await js.consumer_info(names.executions_stream, names.dispatcher_consumer)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the dispatcher did not catch up within {timeout} s")
    finally:
        await nc.close()


async def _recorded_within(database_url: str, nominal: datetime, count: int, timeout: float) -> float | None:
    """Seconds after `nominal` when `count` successes of that nominal time are in the read model (None: never)."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = await conn.fetchval(
                "SELECT count(*) FROM executions WHERE nominal_time = $1 AND status = 'success'", nominal
            )
            if done >= count:
                return round(time.time() - nominal.timestamp(), 2)
            await asyncio.sleep(0.1)
        return None
    finally:
        await conn.close()
