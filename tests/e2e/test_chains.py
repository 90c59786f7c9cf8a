"""Job chains against `scheduler dev`: a job that runs after another (on success, failure or completion) is set,
shown and refused on the primary API (no such job, a cycle, too deep, a schedule and a link at once), hidden from
NEXUS, and fires in order, with the upstream answer in its body template; a chain stops where a link fails, a job
that runs on failure fires instead, and a paused one records the occurrence as missed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.e2e.harness import Api
from tests.e2e.test_api_jobs import assert_error
from tests.e2e.test_api_webhooks_and_executions import executions
from tests.e2e.test_delivery_retries import create_job, once_soon
from tests.e2e.test_nexus_api import nominal_of
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


async def chained(api: Api, account_id: uuid.UUID, after: str, on: str = "success", **fields: Any) -> dict[str, Any]:
    body = {"account_id": str(account_id), "name": "chained", "type": 1, "after": {"job_id": after, "on": on}}
    status, job = await api.call("POST", "/api/jobs", json=body | fields)
    assert status == 201, job
    return job  # type: ignore[no-any-return]


async def test_a_chained_job_is_shown_with_its_link_and_bad_links_are_refused(api: Api, account_id: uuid.UUID) -> None:
    a = await create_job(api, account_id, "0 9 * * *")
    b = await chained(api, account_id, a["id"], "failure")
    assert b["after"] == {"job_id": a["id"], "on": "failure"} and b["next_run_at"] is None
    assert json.loads(b["schedule"]) == {"kind": "after", "job_id": a["id"], "on": "failure"}

    def refused(status: int, error: Any, says: str) -> None:
        assert_error(status, error, 400, "VALIDATION_ERROR")
        assert says in error["detail"], error

    base = {"account_id": str(account_id), "name": "x", "type": 1}
    status, error = await api.call("POST", "/api/jobs", json=base | {"after": {"job_id": str(uuid.uuid4())}})
    refused(status, error, "not found")
    status, error = await api.call(
        "POST", "/api/jobs", json=base | {"schedule": "0 9 * * *", "after": {"job_id": a["id"]}}
    )
    refused(status, error, "not both")
    status, error = await api.call("POST", "/api/jobs", json=base)
    refused(status, error, "not both")
    # A cycle: a made to run after b, which runs after a.
    status, error = await api.call("PUT", f"/api/jobs/{a['id']}", json={"after": {"job_id": b["id"]}})
    refused(status, error, "cycle")
    status, error = await api.call("PUT", f"/api/jobs/{b['id']}", json={"after": {"job_id": b["id"]}})
    refused(status, error, "cycle")
    # Ten deep at most.
    link = a
    for _ in range(9):
        link = await chained(api, account_id, link["id"])
    status, error = await api.call("POST", "/api/jobs", json=base | {"after": {"job_id": link["id"]}})
    refused(status, error, "at most 10 jobs deep")

    # At most 50 jobs after one; the 50th may still change the outcome it runs on.
    hub = await create_job(api, account_id, "0 9 * * *")
    spokes = [await chained(api, account_id, hub["id"]) for _ in range(50)]
    status, error = await api.call("POST", "/api/jobs", json=base | {"after": {"job_id": hub["id"]}})
    refused(status, error, "at most 50 jobs")
    status, changed = await api.call(
        "PUT", f"/api/jobs/{spokes[-1]['id']}", json={"after": {"job_id": hub["id"], "on": "completion"}}
    )
    assert status == 200 and changed["after"]["on"] == "completion", changed

    # A chained job can become a scheduled one again.
    status, rescheduled = await api.call("PUT", f"/api/jobs/{b['id']}", json={"schedule": "0 10 * * *"})
    assert status == 200 and rescheduled["after"] is None and rescheduled["next_run_at"] is not None, rescheduled
    # NEXUS's document has no chained jobs: it does not list them.
    status, page = await api.call("GET", "/api/v1/jobs/?limit=1000")
    assert status == 200
    listed = {j["uuid"] for j in page}
    assert a["id"] in listed and b["id"] in listed and link["id"] not in listed


async def test_a_chain_of_three_runs_in_order_and_stops_where_a_link_fails(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    template = (
        '{"after": "{{upstream_status}}", "code": "{{upstream_response_code}}", "body": "{{upstream_response_body}}"}'
    )
    receiver.statuses["/b2"] = 500
    once = {"max_attempts": 1, "backoff_seconds": 1}
    # Both chains must be whole before their first links fire, on a loaded box too.
    a = await create_job(api, account_id, once_soon(8), name="a", webhooks=[{"url": receiver.url_for("/a")}])
    b = await chained(api, account_id, a["id"], name="b",
                      webhooks=[{"url": receiver.url_for("/b"), "body_template": template}])  # fmt: skip
    c = await chained(api, account_id, b["id"], name="c", webhooks=[{"url": receiver.url_for("/c")}])
    # The second chain: its middle link fails, so the job after it on success never runs and the one on failure does.
    a2 = await create_job(api, account_id, once_soon(8), name="a2", webhooks=[{"url": receiver.url_for("/a2")}])
    b2 = await chained(api, account_id, a2["id"], name="b2", retry_policy=once,
                       webhooks=[{"url": receiver.url_for("/b2")}])  # fmt: skip
    c2 = await chained(api, account_id, b2["id"], name="c2", webhooks=[{"url": receiver.url_for("/c2")}])
    d2 = await chained(api, account_id, b2["id"], "failure", name="d2", webhooks=[{"url": receiver.url_for("/d2")}])
    paused = await chained(api, account_id, a2["id"], name="paused", enabled=False,
                           webhooks=[{"url": receiver.url_for("/paused")}])  # fmt: skip

    await eventually(lambda: receiver.on("/c") and receiver.on("/d2"), timeout=40, what="the ends of both chains")
    (call_a,), (call_b,), (call_c,) = receiver.on("/a"), receiver.on("/b"), receiver.on("/c")
    assert call_a.at < call_b.at < call_c.at, "in order"
    stamp = nominal_of(call_a.headers["webhook-id"])
    assert nominal_of(call_b.headers["webhook-id"]) == nominal_of(call_c.headers["webhook-id"]) == stamp
    assert call_b.headers["webhook-id"].startswith(b["id"]) and call_c.headers["webhook-id"].startswith(c["id"])
    assert json.loads(call_b.body) == {"after": "success", "code": "200", "body": "received"}

    async def dead_lettered() -> list[dict[str, Any]] | None:
        items = (await executions(api, b2["id"]))["items"]
        return items if items and items[0]["status"] == "dead_letter" else None

    dead = await eventually(dead_lettered, timeout=20, what="the failed link's dead letter recorded")
    assert len(dead) == 1, dead
    assert len(receiver.on("/d2")) == 1 and receiver.on("/c2") == [], "the chain stopped at the failed link"
    assert (await executions(api, c2["id"]))["items"] == []

    async def missed() -> list[dict[str, Any]] | None:
        items = (await executions(api, paused["id"]))["items"]
        return items or None

    (skipped,) = await eventually(missed, timeout=20, what="the paused job's occurrence recorded")
    assert skipped["status"] == "missed" and "paused" in skipped["error"], skipped
    assert receiver.on("/paused") == []

    async def ran() -> dict[str, Any] | None:  # the read model has the run once the projector reaches its request
        status, shown = await api.call("GET", f"/api/jobs/{d2['id']}")
        assert status == 200, shown
        return shown if shown["last_run_at"] is not None else None  # type: ignore[no-any-return]

    shown = await eventually(ran, timeout=20, what="the job run on failure shown with its last run")
    assert shown["last_run_at"] is not None
