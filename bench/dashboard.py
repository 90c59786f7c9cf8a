"""Workload 6, the dashboard: how long each page takes with 10,000 jobs and 100,000 executions in the read models.

The jobs (in one account, tagged in 50 teams) and the executions (spread over the last 24 hours, one in 20 failed
and dead-lettered) are written straight to the streams (bench.seed) and projected by the real projector; the api
then serves the pages. Each page is fetched `repeat` times in turn after two warm-ups; the time is from sending the
request to the end of the HTML. With a Chromium at hand, each page is also loaded in a headless browser and the
navigation's duration (request to the load event, scripts and styles included) recorded.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
from playwright.async_api import async_playwright

from bench.chromium import CHROMIUM_ARGS, chromium_path
from bench.replay import wait_projected
from bench.seed import create_jobs, execution_history, job
from bench.stats import percentile
from bench.system import System
from services.api.core.auth import mint_token
from services.api.ui.session import TOKEN_COOKIE

TARGET_MS = 300.0


@dataclass(frozen=True)
class PageTime:
    page: str
    path: str
    status: int
    bytes: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    browser_ms: float | None  # navigation to the load event in headless Chromium, when one is installed
    met: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _samples(session: aiohttp.ClientSession, url: str, repeat: int) -> tuple[int, int, list[float]]:
    times: list[float] = []
    status = size = 0
    for i in range(repeat + 2):
        began = time.perf_counter()
        async with session.get(url, allow_redirects=False) as response:
            body = await response.read()
            status, size = response.status, len(body)
        if i >= 2:
            times.append((time.perf_counter() - began) * 1000)
    return status, size, times


async def _browser_times(base: str, token: str, pages: list[tuple[str, str]], shots: Path) -> dict[str, float]:
    """Each page's navigation time in headless Chromium (a second visit: static files cached); a screenshot of
    each goes to `shots`."""
    chromium = chromium_path()
    if chromium is None:
        return {}
    found: dict[str, float] = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context()
        await context.add_cookies([{"name": TOKEN_COOKIE, "value": token, "url": base + "/ui"}])
        page = await context.new_page()
        await page.set_viewport_size({"width": 1280, "height": 860})
        for name, path in pages:
            await page.goto(base + path, wait_until="load")
            await page.goto(base + path, wait_until="load")
            duration = await page.evaluate("performance.getEntriesByType('navigation')[0].duration")
            found[path] = round(float(duration), 1)
            await page.screenshot(path=str(shots / f"dashboard-{name.replace(',', '').replace(' ', '-')}.png"))
        await browser.close()
    return found


async def _seed(system: System, account: uuid.UUID, jobs: int, executions: int) -> None:
    settings = system.settings
    now = datetime.now(UTC)
    states = [
        job(account, f"report-{i:05d}", f"{i % 60} {i % 24} * * *", "https://example.com/hooks/report", now)
        for i in range(jobs)
    ]
    states = [msgspec.structs.replace(s, tags=(f"team-{i % 50}",)) for i, s in enumerate(states)]
    await create_jobs(settings, states)
    spacing = timedelta(days=1) / executions
    await execution_history(
        settings, states, executions, start=now - timedelta(days=1), spacing=spacing, fail_every=20, next_runs=True
    )
    await wait_projected(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("VACUUM ANALYZE")  # as autovacuum would have by then
    finally:
        await conn.close()


async def run_dashboard(directory: Path, jobs: int, executions: int, repeat: int) -> list[PageTime]:
    with System(directory, services=("projector", "api")) as system:
        account = uuid.uuid4()
        seeded_at = time.monotonic()
        await _seed(system, account, jobs, executions)
        print(f"  seeded and projected in {time.monotonic() - seeded_at:.0f} s", flush=True)
        conn = await asyncpg.connect(system.settings.database_url)
        try:
            some_job = await conn.fetchval("SELECT id FROM jobs WHERE name = 'report-04242'") or await conn.fetchval(
                "SELECT id FROM jobs LIMIT 1"
            )
            old = await conn.fetchrow("SELECT id, created_at FROM executions ORDER BY created_at LIMIT 1 OFFSET 5000")
            failed = await conn.fetchval("SELECT id FROM executions WHERE status = 'dead_letter' LIMIT 1")
        finally:
            await conn.close()
        if old is None:
            raise RuntimeError("the seeded read model has fewer than 5,001 executions")
        cursor = f"{old['created_at'].isoformat()}_{old['id']}".replace("+", "%2B")
        pages = [
            ("overview", "/ui"),
            ("overview, live refresh", "/ui/overview/stats"),
            ("jobs", "/ui/jobs"),
            ("jobs, name search", "/ui/jobs?q=report-042"),
            ("jobs, tag and type", "/ui/jobs?tag=team-7&type=cron"),
            ("jobs, page 300", "/ui/jobs?page=300"),
            ("job page", f"/ui/jobs/{some_job}"),
            ("job, edit form", f"/ui/jobs/{some_job}/edit"),
            ("new job form", "/ui/jobs/new"),
            ("executions", "/ui/executions"),
            ("executions, failed", "/ui/executions?status=failure&status=dead_letter&status=timed_out"),
            ("executions, a status none has", "/ui/executions?status=timed_out"),
            ("executions, one job", f"/ui/executions?job={some_job}"),
            ("executions, an older page", f"/ui/executions?before={cursor}"),
            ("execution page", f"/ui/executions/{failed}"),
            ("dead letters", "/ui/dead-letters"),
        ]
        token = mint_token(system.secret, accounts=[account])
        results: list[PageTime] = []
        async with aiohttp.ClientSession(cookies={TOKEN_COOKIE: token}) as session:
            for name, path in pages:
                status, size, times = await _samples(session, system.base_url + path, repeat)
                p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
                results.append(PageTime(name, path, status, size, round(p50, 1), round(p95, 1), round(max(times), 1),
                                        None, status == 200 and p95 < TARGET_MS))  # fmt: skip
        shots = directory.parent / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        browser = await _browser_times(system.base_url, token, pages, shots)
        timed = []
        for r in results:
            in_browser = browser.get(r.path)
            met = r.met and (in_browser is None or in_browser < TARGET_MS)
            timed.append(PageTime(**(r.as_dict() | {"browser_ms": in_browser, "met": met})))
        return timed
