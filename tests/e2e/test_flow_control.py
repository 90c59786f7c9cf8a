"""Flow control per destination against `scheduler dev`: set, shown, cleared and refused on the primary API; 200
jobs aimed at one receiver with a limit of 10 at a time never have more than 10 requests in flight there, all are
delivered once, and a job of another destination due at the same second is not held back behind them."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.harness import Api
from tests.e2e.test_api_jobs import assert_error
from tests.e2e.test_delivery_retries import create_job
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

JOBS = 200
LIMIT = 10


async def test_flow_control_is_set_shown_changed_and_cleared(api: Api, account_id: uuid.UUID) -> None:
    flow = {"key": "billing-api", "parallelism": 10, "rate": 100, "period_seconds": 60}
    job = await create_job(api, account_id, "0 9 * * *", flow_control=flow)
    assert job["flow_control"] == flow
    status, changed = await api.call("PUT", f"/api/jobs/{job['id']}", json={"flow_control": {"key": "b", "rate": 5}})
    assert status == 200 and changed["flow_control"] == {"key": "b", "parallelism": None, "rate": 5,
                                                          "period_seconds": 1.0}  # fmt: skip
    status, cleared = await api.call("PUT", f"/api/jobs/{job['id']}", json={"flow_control": None})
    assert status == 200 and cleared["flow_control"] is None
    status, shown = await api.call("GET", f"/api/jobs/{job['id']}")
    assert status == 200 and shown["flow_control"] is None


@pytest.mark.parametrize(
    "flow",
    [
        {"key": "has space", "parallelism": 1},
        {"key": "billing"},
        {"key": "billing", "parallelism": 0},
        {"key": "billing", "rate": 10, "period_seconds": 0},
        {"key": "billing", "parallelism": 1, "burst": 3},
    ],
)
async def test_bad_flow_control_is_refused_naming_it(api: Api, account_id: uuid.UUID, flow: dict[str, Any]) -> None:
    body = {"account_id": str(account_id), "name": "x", "schedule": "0 9 * * *", "type": 1, "flow_control": flow}
    status, error = await api.call("POST", "/api/jobs", json=body)
    assert_error(status, error, 400, "VALIDATION_ERROR")
    assert "flow_control" in json.dumps(error), error


async def test_two_hundred_jobs_on_one_key_never_exceed_its_parallelism_and_all_are_delivered_once(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.slow["/limited"] = 0.1  # a receiver that takes its time, so requests would pile up on it
    receiver.slow["/other"] = 0.1
    # Every job fires once, at the same second, far enough ahead for all of them to be created first.
    # (Creating them took 0.7 s on a 2-core box: 8 s leaves room for a box several times slower.)
    due = (datetime.now(UTC) + timedelta(seconds=8)).replace(microsecond=0)
    once = f"{due.second} {due.minute} {due.hour} * * *"
    flow = {"key": "slow-receiver", "parallelism": LIMIT}
    creating = asyncio.Semaphore(16)

    async def limited(n: int) -> dict[str, Any]:
        async with creating:
            return await create_job(api, account_id, once, name=f"limited {n}", flow_control=flow,
                                    webhooks=[{"url": receiver.url_for("/limited")}])  # fmt: skip

    jobs = await asyncio.gather(*(limited(n) for n in range(JOBS)))
    other = await create_job(api, account_id, once, name="another destination",
                             webhooks=[{"url": receiver.url_for("/other")}])  # fmt: skip
    assert datetime.now(UTC) < due - timedelta(seconds=2), "the jobs took too long to create: the test proves nothing"

    await eventually(lambda: len(receiver.on("/limited")) >= JOBS, timeout=90, what=f"{JOBS} deliveries")
    assert receiver.most_in_flight["/limited"] <= LIMIT, receiver.most_in_flight
    assert receiver.most_in_flight["/limited"] >= 2, "the limit, not a single file, is what held them back"
    ids = Counter(call.headers["webhook-id"] for call in receiver.on("/limited"))
    assert len(ids) == JOBS and set(ids.values()) == {1}, "each job's occurrence delivered exactly once"
    assert {i.split("_", 1)[0] for i in ids} == {job["id"] for job in jobs}
    # The other destination's job, due at the same second, did not wait behind the limited ones.
    (other_call,) = receiver.on("/other")
    assert other_call.headers["webhook-id"].startswith(other["id"])
    assert other_call.at < receiver.on("/limited")[-1].at

    async def recorded() -> bool:
        status, page = await api.call("GET", f"/api/jobs/{jobs[-1]['id']}/executions")
        return status == 200 and [e["status"] for e in page["items"]] == ["success"]

    await eventually(recorded, timeout=30, what="the last job's execution recorded as a success")
