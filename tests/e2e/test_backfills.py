"""Backfills against `scheduler dev`: a backfill over a past range runs only the occurrences that have not succeeded
(never fired, or dead-lettered), each once, keeps their ids, and a second backfill of the same range runs nothing;
the API refuses what the limits forbid, and a cancelled backfill requests nothing more."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.bus.withdrawals import WITHDRAWN_REASON
from shared.contracts.backfills import BACKFILL_SETTLE_SECONDS
from tests.e2e.harness import Api
from tests.e2e.test_api_jobs import assert_error
from tests.e2e.test_api_webhooks_and_executions import executions
from tests.e2e.test_chains import chained
from tests.e2e.test_delivery_retries import create_job
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

EVERY_SECOND = "* * * * * *"
ONCE = {"max_attempts": 1, "backoff_seconds": 1}


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def start_backfill(api: Api, job_id: str, start: datetime, end: datetime, **fields: Any) -> dict[str, Any]:
    body = {"start": stamp(start), "end": stamp(end)} | fields
    status, backfill = await api.call("POST", f"/api/jobs/{job_id}/backfills", json=body)
    assert status == 202, backfill
    assert backfill["status"] == "running", backfill
    return backfill  # type: ignore[no-any-return]


async def ended(api: Api, job_id: str, backfill_id: str, timeout: float = 40) -> dict[str, Any]:
    async def look() -> dict[str, Any] | None:
        status, backfill = await api.call("GET", f"/api/jobs/{job_id}/backfills/{backfill_id}")
        assert status == 200, backfill
        return backfill if backfill["status"] != "running" else None  # type: ignore[no-any-return]

    return await eventually(look, timeout=timeout, what=f"backfill {backfill_id} to end")


async def test_a_backfill_runs_only_what_has_not_succeeded_and_each_once(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.scripts["/bf"] = [(500, {})]  # the job's first occurrence is dead-lettered (one attempt)
    job = await create_job(
        api, account_id, EVERY_SECOND, retry_policy=ONCE, webhooks=[{"url": receiver.url_for("/bf")}]
    )
    created = datetime.fromisoformat(job["created_at"])
    await eventually(lambda: len(receiver.on("/bf")) >= 4, timeout=20, what="four occurrences")
    status, _ = await api.call("PATCH", f"/api/jobs/{job['id']}/disable")
    assert status == 200

    async def settled() -> list[dict[str, Any]] | None:
        items = (await executions(api, job["id"], "?limit=1000"))["items"]
        # A pause that reaches the ticker inside its fire lead withdraws the occurrence already requested (a loaded
        # box): it comes after every fired one, so after the range, and never settles.
        items = [e for e in items if not (e["status"] == "skipped" and e["error"] == WITHDRAWN_REASON)]
        return items if all(e["status"] in ("success", "dead_letter") for e in items) else None

    before = await settled_items(settled)
    assert [e["status"] for e in before].count("dead_letter") == 1, before
    # The range: ten seconds before the job existed (never fired), and what it fired since.
    start = created.replace(microsecond=0) - timedelta(seconds=10)
    end = max(datetime.fromisoformat(e["scheduled_at"]) for e in before)
    succeeded = {e["occurrence_id"] for e in before if e["status"] == "success"}
    dead = {e["occurrence_id"] for e in before if e["status"] == "dead_letter"}
    total = int((end - start).total_seconds()) + 1
    calls_before = Counter(c.headers["webhook-id"] for c in receiver.on("/bf"))

    # A range ends a little before now (the job's jitter and BACKFILL_SETTLE_SECONDS): until then it is refused.
    status, error = await api.call(
        "POST", f"/api/jobs/{job['id']}/backfills", json={"start": stamp(start), "end": stamp(end)}
    )
    assert_error(status, error, 400, "VALIDATION_ERROR")
    assert "s ago" in error["detail"], error
    await eventually(
        lambda: datetime.now(UTC) > end + timedelta(seconds=BACKFILL_SETTLE_SECONDS),
        timeout=20,
        what="the range settled",
    )
    backfill = await start_backfill(api, job["id"], start, end, per_second=50)
    assert backfill["total"] == total and backfill["per_second"] == 50
    # A paused job's backfill waits for it.
    status, _ = await api.call("PATCH", f"/api/jobs/{job['id']}/enable")
    assert status == 200
    done = await ended(api, job["id"], backfill["id"])
    assert done["status"] == "completed", done
    assert done["done"] == total and done["already_succeeded"] == len(succeeded) and done["in_flight"] == 0, done
    assert done["requested"] == total - len(succeeded), done

    # The receiver: every occurrence of the range now succeeded once; none that had succeeded was called again.
    def range_calls() -> Counter[str]:
        ids = [c.headers["webhook-id"] for c in receiver.on("/bf")]
        return Counter(i for i in ids if start <= nominal(i) <= end)

    # Every occurrence of the range, and the dead letter's second attempt.
    await eventually(lambda: range_calls().total() == total + len(dead), timeout=20, what="the backfill's deliveries")
    calls = range_calls()
    assert len(calls) == total, "an occurrence of the range was not delivered"
    for occurrence, n in calls.items():
        expected = 2 if occurrence in dead else 1  # a dead letter: its failed attempt, then the backfill's
        assert n == expected, (occurrence, n, calls_before.get(occurrence))
    items = (await executions(api, job["id"], "?limit=1000"))["items"]
    mine = [e for e in items if e["backfill_id"] == backfill["id"]]
    assert len(mine) == total - len(succeeded)
    assert {e["attempt"] for e in mine if e["occurrence_id"] in dead} == {2}
    assert {e["attempt"] for e in mine if e["occurrence_id"] not in dead} == {1}
    # The dead letter it ran again is one no more (as after a re-drive): a re-drive of the job finds none.
    status, letters = await api.call("GET", f"/api/dead-letters?job_id={job['id']}")
    assert status == 200 and letters["items"] == [], letters

    # The same range again: everything in it has succeeded, so nothing runs.
    again = await ended(api, job["id"], (await start_backfill(api, job["id"], start, end, per_second=100))["id"])
    assert again["status"] == "completed" and again["requested"] == 0, again
    assert again["already_succeeded"] == total, again
    status, page = await api.call("GET", f"/api/jobs/{job['id']}/backfills")
    assert status == 200 and [b["id"] for b in page["items"]] == [again["id"], backfill["id"]], page


async def settled_items(check: Any) -> list[dict[str, Any]]:
    return await eventually(check, timeout=20, what="the job's executions to finish")  # type: ignore[no-any-return]


def nominal(occurrence: str) -> datetime:
    return datetime.strptime(occurrence.rsplit("_", 1)[1], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)


async def test_backfills_are_refused_outside_their_limits_and_cancelled_on_request(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    job = await create_job(api, account_id, EVERY_SECOND, enabled=False, webhooks=[{"url": receiver.url_for("/c")}])
    path = f"/api/jobs/{job['id']}/backfills"
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)  # a range must end a little before now

    async def refused(body: dict[str, Any], says: str, status_wanted: int = 400, at: str = path) -> None:
        status, error = await api.call("POST", at, json=body)
        code = {400: "VALIDATION_ERROR", 404: "JOB_NOT_FOUND", 409: "CONFLICT"}[status_wanted]
        assert_error(status, error, status_wanted, code)
        assert says in error["detail"], error

    hour = timedelta(hours=1)
    await refused({"start": stamp(now - hour), "end": stamp(now + hour)}, "at least 10 s ago")
    await refused({"start": stamp(now), "end": stamp(now - hour)}, "before end")
    await refused({"start": stamp(now - hour), "end": stamp(now), "per_second": 0}, "per_second")
    await refused({"start": stamp(now - hour), "end": stamp(now), "per_second": 101}, "per_second")
    await refused({"start": stamp(now - 3 * hour), "end": stamp(now)}, "more than 10,000")
    await refused({"start": "2026-01-01T00:00:00", "end": stamp(now)}, "UTC offset")
    await refused({"start": stamp(now - hour), "end": stamp(now), "extra": 1}, "extra")
    await refused(
        {"start": stamp(now - hour), "end": stamp(now)}, "not found", 404, f"/api/jobs/{uuid.uuid4()}/backfills"
    )
    yearly = await create_job(api, account_id, "0 9 1 1 *", webhooks=[{"url": receiver.url_for("/y")}])
    await refused(
        {"start": stamp(now - hour), "end": stamp(now)}, "no occurrence", at=f"/api/jobs/{yearly['id']}/backfills"
    )
    link = await chained(api, account_id, job["id"])
    await refused(
        {"start": stamp(now - hour), "end": stamp(now)}, "chained job", at=f"/api/jobs/{link['id']}/backfills"
    )

    # Three running per account at most (their jobs are paused, so they wait): a fourth is a 409 until one is
    # cancelled.
    half_hour = now - timedelta(minutes=30)
    paused = [job] + [
        await create_job(api, account_id, EVERY_SECOND, enabled=False, webhooks=[{"url": receiver.url_for("/c")}])
        for _ in range(2)
    ]
    running = [await start_backfill(api, j["id"], half_hour, now, per_second=1) for j in paused]
    await refused({"start": stamp(half_hour), "end": stamp(now), "per_second": 1}, "3 backfills running", 409)
    status, cancelled = await api.call("DELETE", f"{path}/{running[0]['id']}")
    assert status == 202 and cancelled["status"] == "cancelled" and cancelled["reason"], cancelled
    status, error = await api.call("DELETE", f"{path}/{running[0]['id']}")
    assert_error(status, error, 409, "CONFLICT")
    status, error = await api.call("GET", f"{path}/{uuid.uuid4()}")
    assert_error(status, error, 404, "BACKFILL_NOT_FOUND")
    status, error = await api.call("GET", f"{path}/not-an-id")
    assert_error(status, error, 404, "BACKFILL_NOT_FOUND")
    status, error = await api.call("DELETE", f"/api/jobs/{paused[1]['id']}/backfills/{running[2]['id']}")
    assert_error(status, error, 404, "BACKFILL_NOT_FOUND")  # another job's backfill

    # The first job's next backfill runs at one a second once the job is resumed; cancelled, it requests nothing more.
    fourth = await start_backfill(api, job["id"], half_hour, now, per_second=1)
    status, _ = await api.call("PATCH", f"/api/jobs/{job['id']}/enable")
    assert status == 200

    async def by_fourth() -> list[dict[str, Any]]:
        items = (await executions(api, job["id"], "?limit=1000"))["items"]
        return [e for e in items if e["backfill_id"] == fourth["id"]]

    await eventually(by_fourth, timeout=20, what="the fourth backfill's first request")
    status, cancelled = await api.call("DELETE", f"{path}/{fourth['id']}")
    assert status == 202 and cancelled["status"] == "cancelled", cancelled
    requested = len(await by_fourth())
    await asyncio.sleep(3)  # absence: the runner looks at the running backfills every second
    assert len(await by_fourth()) <= requested + 1
    assert requested + 1 < cancelled["total"]
    assert [
        e for e in (await executions(api, job["id"], "?limit=1000"))["items"] if e["backfill_id"] == running[0]["id"]
    ] == [], "cancelled before its job was resumed: it never ran"
    for backfill, paused_job in zip(running[1:], paused[1:], strict=True):
        status, cancelled = await api.call("DELETE", f"/api/jobs/{paused_job['id']}/backfills/{backfill['id']}")
        assert status == 202 and cancelled["status"] == "cancelled", cancelled
