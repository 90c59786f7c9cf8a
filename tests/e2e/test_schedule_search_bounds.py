"""Schedules that never or rarely fire, against `scheduler dev`, on both surfaces: refused at once with the reason,
without holding the api's event loop (issue 15, item 2); and date jobs whose time has passed (item 16)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.harness import Api, create_firing_job
from tests.e2e.test_api_jobs import assert_error
from tests.e2e.test_nexus_api import DOCUMENT_EXAMPLE, assert_422, nexus_create, nominal_of, parse
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FEB_30 = {"months": [2], "days_of_month": [30], "time": "09:00"}
CALENDAR = DOCUMENT_EXAMPLE | {"job_type": "calendar", "cron_expression": None}
# Requests that took seconds of CPU on the api's loop each: a rule no day matches (created, or created paused and
# then resumed by PUT and by /resume), the same as an RRULE, and a cron expression no date matches (primary API).
ROUNDS = 3
CONCURRENT = 12
# A p99 lateness bound as the suite's other every-second jobs under load use (test_faults).
LATENESS_BOUND_S = 1.0


async def impossible_requests(api: Api, account_id: uuid.UUID, paused: list[int]) -> list[tuple[str, int, Any]]:
    """One of each kind of request that used to search to year 9999; (what, status, body) of each."""

    async def call(what: str, method: str, path: str, body: dict[str, Any]) -> tuple[str, int, Any]:
        status, answer = await api.call(method, path, json=body)
        return what, status, answer

    job = paused[0]
    return await asyncio.gather(
        call("nexus create", "POST", "/api/v1/jobs/", CALENDAR | {"calendar_rule": FEB_30}),
        call(
            "nexus rrule", "POST", "/api/v1/jobs/", CALENDAR | {"calendar_rule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"}
        ),
        call("nexus put", "PUT", f"/api/v1/jobs/{job}", {"calendar_rule": FEB_30, "is_active": True}),
        call("nexus create", "POST", "/api/v1/jobs/", CALENDAR | {"calendar_rule": FEB_30, "is_active": False}),
        call(
            "primary cron",
            "POST",
            "/api/jobs",
            {"account_id": str(account_id), "name": "never", "schedule": "0 0 30 2 *", "type": 1},
        ),
        call("primary put", "PUT", f"/api/jobs/{paused[1]}", {"schedule": "0 0 0 31 4 *", "enabled": True}),
    )


async def test_rules_that_never_fire_are_refused_at_once_and_the_loop_stays_free(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    steady = (await create_firing_job(api, account_id, receiver.url_for("/steady")))["job"]["id"]
    await eventually(lambda: len(receiver.on("/steady")) >= 2, timeout=30, what="the every-second job firing")
    paused_nexus = await nexus_create(api, job_type="calendar", cron_expression=None, is_active=False,
                                      calendar_rule={"weekdays": [1], "time": "09:00"})  # fmt: skip
    status, paused_primary = await api.call(
        "POST", "/api/jobs", json={"account_id": str(account_id), "name": "p", "schedule": "0 9 * * 1", "type": 1,
                                   "enabled": False},
    )  # fmt: skip
    assert status == 201, paused_primary
    paused = [paused_nexus["id"], paused_primary["id"]]

    health: list[float] = []
    burst_done = asyncio.Event()

    async def probe_health() -> None:
        while not burst_done.is_set():
            started = time.perf_counter()
            status, _ = await api.call("GET", "/health")
            health.append(time.perf_counter() - started)
            assert status in (200, 503)
            await asyncio.sleep(0.05)

    prober = asyncio.create_task(probe_health())
    started = datetime.now(UTC)
    answers: list[tuple[str, int, Any]] = []
    for _ in range(ROUNDS):
        batches = [impossible_requests(api, account_id, paused) for _ in range(CONCURRENT // 6)]
        for batch in await asyncio.gather(*batches):
            answers.extend(batch)
    await asyncio.sleep(2)  # the every-second job's occurrences during the burst get delivered
    burst_done.set()
    await prober
    ended = datetime.now(UTC)

    health.sort()
    assert len(health) >= 5, health
    # Half of the checks and more answer well within 100 ms; a shared 2-core box may delay one now and then.
    assert health[len(health) // 2] < 0.1, health
    assert health[int(len(health) * 0.9)] < 0.1, health
    during = [c for c in receiver.on("/steady") if started <= nominal_of(c.headers["webhook-id"]) <= ended]
    assert len(during) >= (ended - started).total_seconds() - 2, "the every-second job kept firing"
    lateness = sorted(c.at - nominal_of(c.headers["webhook-id"]).timestamp() for c in during)
    assert lateness[int(len(lateness) * 0.99) - 1] < LATENESS_BOUND_S, lateness[-5:]

    for what, status, body in answers:
        if what.startswith("nexus"):
            assert_422(status, body, "calendar_rule")
            assert "the rule never fires: February has no day 30" in body["detail"][0]["msg"], body
        else:
            assert_error(status, body, 400, "INVALID_CRON_EXPRESSION")
    status, still = await api.call("GET", f"/api/v1/jobs/{paused[0]}")
    assert (status, still["is_active"]) == (200, False)
    await api.call("PUT", f"/api/jobs/{steady}", json={"enabled": False})


async def test_a_date_job_created_after_its_time_goes_through_its_misfire_policy(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    recent, old = now - timedelta(seconds=5), now - timedelta(minutes=10)
    date_job = {"job_type": "date", "cron_expression": None}
    fired = await nexus_create(api, **date_job, scheduled_time=recent.isoformat())  # within the default 60 s grace
    missed = await nexus_create(api, **date_job, scheduled_time=old.isoformat())
    skipped = await nexus_create(
        api, **date_job, scheduled_time=recent.isoformat(), misfire_policy={"policy": "skip", "grace_seconds": None}
    )
    assert all(j["is_active"] for j in (fired, missed, skipped))

    async def runs(job: dict[str, Any]) -> list[dict[str, Any]] | None:
        status, page = await api.call("GET", f"/api/v1/jobs/{job['id']}/executions")
        assert status == 200, page
        return page or None  # type: ignore[no-any-return]

    ran = await eventually(lambda: runs(fired), timeout=20, what="the recent date job to fire")
    assert [(parse(r["scheduled_at"]), r["raw_status"] != "missed") for r in ran] == [(recent, True)]
    for job, at in ((missed, old), (skipped, recent)):
        recorded = await eventually(lambda j=job: runs(j), timeout=20, what="the missed date job")
        assert [(parse(r["scheduled_at"]), r["status"], r["raw_status"]) for r in recorded] == [
            (at, "cancelled", "missed")
        ]
        assert "its time had passed when the job was scheduled" in recorded[0]["error_message"], recorded

    # Outside the job's window it never fires: still refused.
    status, body = await api.call(
        "POST", "/api/v1/jobs/", json=DOCUMENT_EXAMPLE | date_job | {"scheduled_time": old.isoformat(),
                                                                    "start_at": now.isoformat()},
    )  # fmt: skip
    assert_422(status, body, "scheduled_time")
