"""Running the system for end-to-end tests: in one process, or as real `scheduler` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from scheduler.runner import SERVICES, run_services
from shared.settings import Settings
from tests.waiting import eventually

SCHEDULER = str(Path(sys.executable).parent / "scheduler")


class Api:
    """A thin client of the REST API that returns (status, json)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> None:
        self.session, self.base, self.headers = session, base, headers

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        async with self.session.request(method, self.base + path, headers=headers, **kwargs) as response:
            body = await response.json(content_type=None) if response.status != 204 else None
            return response.status, body

    async def healthy(self) -> bool:
        try:
            status, body = await self.call("GET", "/health")
        except aiohttp.ClientError:
            return False
        return status == 200 and body == {"status": "healthy", "service": "scheduler"}


@asynccontextmanager
async def api_client(port: int, headers: dict[str, str]) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        api = Api(session, f"http://127.0.0.1:{port}", headers)
        # A start-up wait: on a loaded box, several service processes importing at once take well over 20 s.
        await eventually(api.healthy, timeout=60, what="GET /health")
        yield api


@asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[None]:
    """All four services in this event loop, stopped (and checked for failures) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_services(settings, list(SERVICES), stop))
    try:
        yield
    finally:
        stop.set()
        await task


def service_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env.update(
        NATS_URL=settings.nats_url,
        DATABASE_URL=settings.database_url,
        SCHEDULER_NAMESPACE=settings.namespace,
        SUPABASE_JWT_SECRET=settings.jwt_secret.get_secret_value() if settings.jwt_secret else "",
        SCHEDULER_API_PORT=str(settings.api_port),
        SCHEDULER_DELIVERY_TIMEOUT_SECONDS=str(settings.delivery_timeout_seconds),
        SCHEDULER_MAX_DELIVERY_TIMEOUT_SECONDS=str(settings.max_delivery_timeout_seconds),
        SCHEDULER_ACK_WAIT_SECONDS=str(settings.ack_wait_seconds),
        SCHEDULER_EGRESS_ALLOW=settings.egress_allow,
        SCHEDULER_STREAM_REPLICAS=str(settings.stream_replicas),
    )
    return env


def start_process(args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([SCHEDULER, *args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM, then wait; a process that ignores it is killed and reported."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"{process.args} did not stop on SIGTERM within {timeout} s") from None
    return process.returncode


async def create_firing_job(api: Api, account_id: object, url: str, schedule: str = "* * * * * *") -> dict[str, Any]:
    """A job with a webhook to `url`, created paused and enabled once the webhook is on it (so no occurrence of
    the first second goes out with no webhook)."""
    status, job = await api.call(
        "POST",
        "/api/jobs",
        json={"account_id": str(account_id), "name": "every second", "schedule": schedule, "type": 1,
              "enabled": False},
    )  # fmt: skip
    assert status == 201, job
    status, hook = await api.call(
        "POST",
        "/webhooks",
        json={
            "job_id": job["id"],
            "url": url,
            "method": "POST",
            "headers": {"X-Test": "yes"},
            "query_params": {"source": "e2e"},
            "body_template": '{"action": "ping"}',
        },
    )
    assert status == 201, hook
    status, job = await api.call("PATCH", f"/api/jobs/{job['id']}/enable")
    assert status == 200, job
    return {"job": job, "webhook": hook}


@asynccontextmanager
async def running(settings: Settings, names: list[str]) -> AsyncIterator[None]:
    """The named services in this event loop, stopped (and checked for failures) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_services(settings, names, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def scheduled_at(execution: dict[str, Any]) -> datetime:
    """An execution's nominal fire time, as a datetime."""
    return datetime.fromisoformat(execution["scheduled_at"].replace("Z", "+00:00"))


async def run_cli(
    settings: Settings, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A `scheduler` command as an operator runs it: its own process, its output on stdout (logs go to stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_", "NATS_", "DATABASE_"))}
    env |= {
        "NATS_URL": settings.nats_url,
        "DATABASE_URL": settings.database_url,
        "SCHEDULER_NAMESPACE": settings.namespace,
    } | (extra_env or {})
    result = await asyncio.to_thread(
        subprocess.run, [SCHEDULER, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    return result


def nominal_of(webhook_id: str) -> datetime:
    """The nominal time inside an occurrence id (<job uuid>_<YYYYmmddTHHMMSS.ffffffZ>)."""
    return datetime.strptime(webhook_id.rsplit("_", 1)[1], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
