"""Workload 4, API latency under load: create, get and list jobs on the Scheduler service API, each in two modes.

- Open loop, fixed rate: `rate` requests per second for `seconds` seconds, request i started at t0 + i/rate whether
  or not earlier ones have answered. Latency runs from the *scheduled* start to the end of the response body, so time
  spent queued (in the client's connection pool, the server's backlog or a stalled event loop) counts, and a slow
  server is not let off by being sent fewer requests (no coordinated omission).
- Closed loop, max throughput: `concurrency` workers sending requests back to back for `seconds` seconds; the figure
  of interest is the achieved requests per second, latency there is from send to end of response.

Create is a command (appended to the job log, answered once the projector has it in Postgres); get and list are
reads of the Postgres read model. Jobs are disabled with a schedule that never fires during a run, so the ticker and
dispatcher stay idle. Get picks ids at random among the jobs created here; list asks for the newest 20 of the account,
which by then holds every job both create phases made. Latency percentiles are over 2xx responses only; anything
else (other statuses, exceptions, timeouts) is counted in `errors`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from bench.stats import percentile

# (method, path, JSON body or None)
Request = tuple[str, str, dict[str, Any] | None]


@dataclass(frozen=True)
class ApiLatency:
    operation: str  # "create", "get", "list"
    mode: str  # "fixed 100/s" or "max, 16 concurrent"
    requests: int
    errors: int  # non-2xx or exceptions
    rps: float  # achieved requests per second (completed, successful or not)
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Recorder:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, headers: dict[str, str]) -> None:
        self.session, self.base_url, self.headers = session, base_url, headers
        self.latencies: list[float] = []
        self.errors = 0
        self.created: list[str] = []

    async def send(self, request: Request, started: float) -> None:
        """One request; latency in ms from `started` (a `time.perf_counter()` instant) to the end of the body."""
        method, path, body = request
        try:
            async with self.session.request(method, self.base_url + path, json=body, headers=self.headers) as response:
                payload = await response.read()
                ok = 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if not ok:
            self.errors += 1
            return
        self.latencies.append((time.perf_counter() - started) * 1000)
        if method == "POST":
            self.created.append(json.loads(payload)["id"])


async def _fixed(recorder: _Recorder, make: Callable[[], Request], rate: int, seconds: int) -> float:
    """Open loop: each request a task started at its scheduled instant; returns seconds until the last answered."""
    tasks: list[asyncio.Task[None]] = []
    t0 = time.perf_counter()
    for i in range(rate * seconds):
        scheduled = t0 + i / rate
        if (delay := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(recorder.send(make(), scheduled)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - t0


async def _max(recorder: _Recorder, make: Callable[[], Request], concurrency: int, seconds: int) -> float:
    """Closed loop: `concurrency` workers back to back until the deadline; returns the seconds it took."""
    t0 = time.perf_counter()
    deadline = t0 + seconds

    async def worker() -> None:
        while (started := time.perf_counter()) < deadline:
            await recorder.send(make(), started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0


async def run_api(
    base_url: str,
    headers: dict[str, str],
    account: uuid.UUID,
    *,
    rate: int = 100,
    seconds: int = 20,
    concurrency: int = 16,
) -> tuple[list[ApiLatency], dict[str, list[float]]]:
    """Rows in the order create, get, list (fixed rate, then max), and raw latencies in ms by "operation mode"."""
    counter = itertools.count()
    created: list[str] = []

    def create() -> Request:
        body = {"account_id": str(account), "name": f"load {next(counter)}", "schedule": "0 0 1 1 *", "type": 1,
                "enabled": False}  # fmt: skip
        return "POST", "/api/jobs", body

    makers: dict[str, Callable[[], Request]] = {
        "create": create,
        "get": lambda: ("GET", f"/api/jobs/{secrets.choice(created)}", None),
        "list": lambda: ("GET", f"/api/jobs?account_id={account}&limit=20", None),
    }
    modes = ((f"fixed {rate}/s", _fixed, rate), (f"max, {concurrency} concurrent", _max, concurrency))
    rows: list[ApiLatency] = []
    raw: dict[str, list[float]] = {}
    connector = aiohttp.TCPConnector(limit=max(concurrency * 4, 64))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        for operation, make in makers.items():
            for mode, run, load in modes:
                if operation == "get" and not created:
                    raise RuntimeError("no job was created, so there is nothing to get")
                recorder = _Recorder(session, base_url, headers)
                elapsed = await run(recorder, make, load, seconds)
                created.extend(recorder.created)
                lat = recorder.latencies
                requests = len(lat) + recorder.errors
                rows.append(
                    ApiLatency(
                        operation=operation,
                        mode=mode,
                        requests=requests,
                        errors=recorder.errors,
                        rps=round(requests / elapsed, 1),
                        p50_ms=round(percentile(lat, 0.50), 1),
                        p95_ms=round(percentile(lat, 0.95), 1),
                        p99_ms=round(percentile(lat, 0.99), 1),
                        max_ms=round(max(lat), 1) if lat else float("nan"),
                    )
                )
                raw[f"{operation} {mode}"] = lat
    return rows, raw
