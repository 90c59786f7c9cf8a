"""Misfire policies after a 3-minute outage of the ticker, with every other service running.

The ticker reads the time from a clock this test steps: the first ticker stops, and the second one starts with its
clock 180 s ahead, exactly as if nothing had looked at the schedules for three minutes. Everything else (api,
projector, dispatcher, NATS, Postgres, the receiver) runs on real time.

The oracle: every occurrence of a job from its first to its last is either delivered once or recorded `missed`
once, never both, and which ones are missed follows from the policy, the saved watermark and the restart time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import nats
import pytest

from scheduler.runner import run_services
from services.ticker.schedule_index import MISFIRE_TOLERANCE
from services.ticker.service import open_ticker
from shared.bus.streams import ticker_bucket
from shared.contracts.subjects import partition_of
from shared.contracts.ticker import watermark_key
from shared.settings import Settings
from tests.e2e.harness import Api, api_client, scheduled_at
from tests.e2e.test_api_webhooks_and_executions import add_webhook
from tests.e2e.test_nexus_api import nominal_of
from tests.faults import SteppedClock
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PERIOD = timedelta(seconds=10)
OUTAGE = timedelta(minutes=3)
GRACE = timedelta(seconds=60)
POLICIES = ("fire_all", "fire_latest", "skip")


@asynccontextmanager
async def ticker(settings: Settings, clock: SteppedClock) -> AsyncIterator[None]:
    stop = asyncio.Event()

    async def run() -> None:
        async with open_ticker(settings, clock) as ticker:
            await ticker.run(stop)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def saved_watermark(settings: Settings, job_id: str) -> datetime:
    """Up to when the ticker had published the partition of this job when it stopped."""
    nc = await nats.connect(settings.nats_url)
    try:
        key = watermark_key(partition_of(uuid.UUID(job_id)))
        entry = await (await ticker_bucket(nc.jetstream(), settings)).get(key)
        assert entry.value is not None
        return msgspec.json.decode(entry.value, type=datetime)
    finally:
        await nc.close()


async def runs(api: Api, job_id: str) -> list[dict[str, Any]]:
    status, page = await api.call("GET", f"/api/jobs/{job_id}/executions?limit=1000")
    assert status == 200, page
    return page["items"]  # type: ignore[no-any-return]


async def test_after_three_minutes_without_a_ticker_each_policy_fires_exactly_what_it_should(
    settings: Settings, auth_headers: dict[str, str], account_id: uuid.UUID, receiver: Receiver
) -> None:
    clock = SteppedClock()
    stop_services = asyncio.Event()
    services = asyncio.create_task(run_services(settings, ["api", "projector", "dispatcher"], stop_services))
    try:
        async with api_client(settings.api_port, auth_headers) as api:
            jobs: dict[str, str] = {}
            for policy in POLICIES:
                body = {
                    "account_id": str(account_id),
                    "name": policy,
                    "schedule": "*/10 * * * * *",
                    "type": 1,
                    "misfire_policy": {"policy": policy, "grace_seconds": GRACE.total_seconds()},
                }
                status, job = await api.call("POST", "/api/jobs", json=body)
                assert status == 201, job
                assert job["misfire_policy"] == {"policy": policy, "grace_seconds": 60.0}
                jobs[policy] = job["id"]
                await add_webhook(api, job["id"], receiver.url_for(f"/{policy}"))

            async with ticker(settings, clock):
                for policy in POLICIES:
                    await eventually(lambda p=policy: receiver.on(f"/{p}"), timeout=20, what=f"{policy} firing")
                # Stop mid-period, so every boundary below is seconds away from an occurrence.
                await eventually(lambda: 4.5 <= datetime.now(UTC).timestamp() % 10 < 5.5, timeout=15, what="mid")
            watermarks = {policy: await saved_watermark(settings, job_id) for policy, job_id in jobs.items()}

            clock.offset = OUTAGE
            restarted = clock()  # the second ticker's first look is a moment after this
            async with ticker(settings, clock):
                for policy in POLICIES:
                    await eventually(
                        lambda p=policy: any(
                            nominal_of(c.headers["webhook-id"]) > restarted + PERIOD for c in receiver.on(f"/{p}")
                        ),
                        timeout=30,
                        what=f"{policy} firing on time again",
                    )

            async def settled(job_id: str, path: str) -> list[dict[str, Any]] | None:
                items = await runs(api, job_id)
                done = [e for e in items if e["status"] in ("success", "missed")]
                delivered = {c.headers["webhook-id"] for c in receiver.on(path)}
                return items if len(done) == len(items) and {e["occurrence_id"] for e in items} >= delivered else None

            for policy, job_id in jobs.items():
                items = await eventually(lambda j=job_id, p=policy: settled(j, f"/{p}"), timeout=30, what="records")
                check_policy(policy, items, receiver, watermarks[policy], restarted)
    finally:
        stop_services.set()
        await asyncio.wait_for(services, 30)


def check_policy(
    policy: str, items: list[dict[str, Any]], receiver: Receiver, watermark: datetime, restarted: datetime
) -> None:
    calls = receiver.on(f"/{policy}")
    delivered = [nominal_of(c.headers["webhook-id"]) for c in calls]
    assert len(delivered) == len(set(delivered)), f"{policy}: an occurrence was delivered twice"
    recorded = [scheduled_at(e) for e in items]
    assert len(recorded) == len(set(recorded)), f"{policy}: an occurrence was recorded twice"
    missed = sorted(scheduled_at(e) for e in items if e["status"] == "missed")
    succeeded = sorted(scheduled_at(e) for e in items if e["status"] == "success")
    assert sorted(delivered) == succeeded, f"{policy}: deliveries and records differ"
    assert not set(missed) & set(delivered), f"{policy}: a missed occurrence was delivered"

    # Nothing lost: every occurrence from the first to the last is accounted for.
    first, last = min(recorded), max(recorded)
    every = [first + i * PERIOD for i in range(int((last - first) / PERIOD) + 1)]
    assert sorted(recorded) == every, f"{policy}: occurrences unaccounted for"

    gap = [t for t in every if watermark < t < restarted - MISFIRE_TOLERANCE]
    assert len(gap) in (17, 18), gap  # three minutes of a 10-second schedule
    expected_missed = {
        "fire_all": [t for t in gap if t < restarted - GRACE],
        "fire_latest": gap[:-1],
        "skip": gap,
    }[policy]
    assert missed == expected_missed, policy
    assert all("no ticker was looking" in e["error"] for e in items if e["status"] == "missed")
    fired_in_gap = [t for t in gap if t in set(delivered)]
    assert len(fired_in_gap) == {"fire_all": 6, "fire_latest": 1, "skip": 0}[policy], (policy, fired_in_gap)
