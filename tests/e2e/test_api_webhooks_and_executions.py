"""Webhooks and executions of scheduler-service-api.md, against `scheduler dev`: jobs really fire."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import DevServer, quiesced, token_for
from tests.e2e.harness import Api, nominal_of
from tests.e2e.test_api_jobs import assert_error, create, parse
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

# The document's fields and this system's additions (docs/api.md): a webhook switched off by 410 Gone, retry timing.
WEBHOOK_FIELDS = {
    "enabled",
    "disabled_reason",
    "id",
    "job_id",
    "url",
    "method",
    "headers",
    "query_params",
    "body_template",
    "content_type",
    "created_at",
    "updated_at",
}
EXECUTION_FIELDS = {
    "backfill_id",
    "retry_at",
    "dead_lettered_at",
    "id",
    "job_id",
    "webhook_id",
    "occurrence_id",
    "scheduled_at",
    "status",
    "attempt",
    "started_at",
    "finished_at",
    "response_code",
    "response_body",
    "error",
    "worker_id",
    "duration_ms",
    "created_at",
}


async def add_webhook(api: Api, job_id: str, url: str, **fields: Any) -> dict[str, Any]:
    status, hook = await api.call("POST", "/webhooks", json={"job_id": job_id, "url": url, "method": "POST"} | fields)
    assert status == 201, hook
    return hook  # type: ignore[no-any-return]


async def executions(api: Api, job_id: str, query: str = "") -> dict[str, Any]:
    status, page = await api.call("GET", f"/api/jobs/{job_id}/executions{query}")
    assert status == 200, page
    return page  # type: ignore[no-any-return]


async def disable_and_settle(dev: DevServer, api: Api, job_id: str) -> dict[str, Any]:
    """Disable a firing job, then wait until every execution it got is finished; the page of all of them."""
    status, _ = await api.call("PATCH", f"/api/jobs/{job_id}/disable")
    assert status == 200
    await quiesced(dev)

    async def settled() -> dict[str, Any] | None:
        page = await executions(api, job_id, "?limit=1000")
        finished = ("success", "failure", "timed_out", "dead_letter", "skipped", "missed")
        return page if all(e["status"] in finished for e in page["items"]) else None

    return await eventually(settled, timeout=20, what="every execution finished")  # type: ignore[no-any-return]


@pytest.fixture
async def other_account(dev_server: DevServer) -> AsyncIterator[tuple[uuid.UUID, Api]]:
    owner = uuid.uuid4()
    async with aiohttp.ClientSession() as session:
        yield owner, Api(session, dev_server.base_url, {"Authorization": f"Bearer {token_for(owner)}"})


async def test_webhook_create_get_update_delete(api: Api, account_id: uuid.UUID) -> None:
    job = await create(api, account_id)
    hook = await add_webhook(
        api,
        job["id"],
        "https://api.example.com/webhook",
        headers={"Authorization": "Bearer api-key", "Content-Type": "application/json"},
        query_params={"param1": "value1"},
        body_template='{"action": "backup"}',
    )
    assert set(hook) == WEBHOOK_FIELDS
    assert (hook["job_id"], hook["url"], hook["method"]) == (job["id"], "https://api.example.com/webhook", "POST")
    assert hook["headers"] == {"Authorization": "Bearer api-key", "Content-Type": "application/json"}
    assert (hook["query_params"], hook["body_template"]) == ({"param1": "value1"}, '{"action": "backup"}')
    status, got = await api.call("GET", f"/webhooks/{hook['id']}")
    assert (status, got) == (200, hook)

    bare = await add_webhook(api, job["id"], "http://example.org/x", method="GET")
    assert (bare["headers"], bare["query_params"], bare["body_template"]) == ({}, None, None)
    assert bare["content_type"] == "application/json"

    status, updated = await api.call(
        "PUT",
        f"/webhooks/{hook['id']}",
        json={"url": "https://api.example.com/new-webhook", "method": "PUT", "body_template": None},
    )
    assert status == 200, updated
    assert (updated["url"], updated["method"], updated["body_template"]) == (
        "https://api.example.com/new-webhook",
        "PUT",
        None,
    )
    assert updated["headers"] == hook["headers"]
    assert parse(updated["updated_at"]) > parse(hook["updated_at"])
    status, got = await api.call("GET", f"/webhooks/{hook['id']}")
    assert got == updated
    status, same = await api.call("PUT", f"/webhooks/{hook['id']}", json={"method": "PUT"})
    assert (status, same) == (200, updated)

    status, body = await api.call("DELETE", f"/webhooks/{hook['id']}")
    assert (status, body) == (204, None)
    for method in ("GET", "PUT", "DELETE"):
        status, error = await api.call(method, f"/webhooks/{hook['id']}", json={})
        assert_error(status, error, 404, "WEBHOOK_NOT_FOUND")
    status, got = await api.call("GET", f"/webhooks/{bare['id']}")
    assert (status, got) == (200, bare)

    status, _ = await api.call("DELETE", f"/api/jobs/{job['id']}")
    assert status == 204
    status, error = await api.call("GET", f"/webhooks/{bare['id']}")
    assert_error(status, error, 404, "WEBHOOK_NOT_FOUND")


@pytest.mark.parametrize(
    "fields",
    [
        {"url": "ftp://example.com/x"},
        {"url": "example.com/x"},
        {"url": "http://"},
        {"url": "http://exa mple.com/"},
        {"url": "https://example.com/" + "a" * 500},
        {"method": "TRACE"},
        {"method": None},
        {"headers": {"Bad Name": "x"}},
        {"headers": {"X-Ok": "line\r\nbreak"}},
        {"headers": {"X-Ok": "bell\u0001"}},
        {"url": "http://a..b/"},
        {"headers": {"webhook-id": "forged"}},
        {"headers": {"X-Number": 1}},
        {"query_params": ["a"]},
        {"body_template": 5},
        {"body_template": "x" * 65537},
        {"body_template": "nul\u0000"},
        {"headers": {"X-Nul": "a\u0000b"}},
        {"query_params": {"q\u0000": "1"}},
        {"headers": {f"X-{i}": "v" for i in range(65)}},
        {"urll": "typo"},
    ],
)
async def test_webhook_create_and_update_refuse_bad_input(
    api: Api, account_id: uuid.UUID, fields: dict[str, Any]
) -> None:
    job = await create(api, account_id)
    body = {"job_id": job["id"], "url": "https://example.com/hook", "method": "POST"} | fields
    status, error = await api.call("POST", "/webhooks", json=body)
    assert_error(status, error, 400, "VALIDATION_ERROR")
    hook = await add_webhook(api, job["id"], "https://example.com/hook")
    status, error = await api.call("PUT", f"/webhooks/{hook['id']}", json=fields)
    assert_error(status, error, 400, "VALIDATION_ERROR")
    status, got = await api.call("GET", f"/webhooks/{hook['id']}")
    assert got == hook


async def test_webhooks_of_unknown_jobs_and_unknown_webhooks_are_404(api: Api) -> None:
    status, error = await api.call(
        "POST", "/webhooks", json={"job_id": str(uuid.uuid4()), "url": "https://example.com/", "method": "POST"}
    )
    assert_error(status, error, 404, "JOB_NOT_FOUND")
    for webhook_id in (str(uuid.uuid4()), "nope"):
        for method in ("GET", "PUT", "DELETE"):
            status, error = await api.call(method, f"/webhooks/{webhook_id}", json={})
            assert_error(status, error, 404, "WEBHOOK_NOT_FOUND")


async def test_another_accounts_webhooks_are_403(api: Api, other_account: tuple[uuid.UUID, Api]) -> None:
    owner, theirs = other_account
    job = await create(theirs, owner)
    hook = await add_webhook(theirs, job["id"], "https://example.com/theirs")
    for method, path, body in [
        ("POST", "/webhooks", {"job_id": job["id"], "url": "https://evil.example/", "method": "POST"}),
        ("GET", f"/webhooks/{hook['id']}", None),
        ("PUT", f"/webhooks/{hook['id']}", {"url": "https://evil.example/"}),
        ("DELETE", f"/webhooks/{hook['id']}", None),
    ]:
        status, error = await api.call(method, path, json=body)
        assert_error(status, error, 403, "FORBIDDEN")
    status, got = await theirs.call("GET", f"/webhooks/{hook['id']}")
    assert got == hook
    status, job_now = await theirs.call("GET", f"/api/jobs/{job['id']}")
    assert job_now["updated_at"] == hook["updated_at"]


async def test_each_webhook_of_an_occurrence_is_its_own_execution(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.statuses["/fails"] = 500
    job = await create(api, account_id, schedule="* * * * * *", name="two hooks")
    ok = await add_webhook(
        api,
        job["id"],
        receiver.url_for("/ok"),
        headers={"X-Token": "abc", "content-type": "text/plain"},
        query_params={"q": "1"},
        body_template="hello",
    )
    bad = await add_webhook(api, job["id"], receiver.url_for("/fails"), method="PUT", body_template="{}")

    async def both_delivered() -> dict[str, Any] | None:
        page = await executions(api, job["id"], "?limit=1000")
        finished = [e for e in page["items"] if e["status"] in ("success", "failure")]
        by_occurrence: dict[str, set[str]] = {}
        for e in finished:
            by_occurrence.setdefault(e["occurrence_id"], set()).add(e["status"])
        return page if any(v == {"success", "failure"} for v in by_occurrence.values()) else None

    page = await eventually(both_delivered, timeout=20, what="an occurrence delivered to both webhooks")
    assert all(set(e) == EXECUTION_FIELDS for e in page["items"])
    # An occurrence both of whose results are in (a newer one's failure may not be projected yet).
    statuses: dict[str, set[str]] = {}
    for e in page["items"]:
        statuses.setdefault(e["occurrence_id"], set()).add(e["status"])
    both = next(o for o, v in statuses.items() if {"success", "failure"} <= v)
    success = next(e for e in page["items"] if e["status"] == "success" and e["occurrence_id"] == both)
    failure = next(e for e in page["items"] if e["status"] == "failure" and e["occurrence_id"] == both)
    assert (success["webhook_id"], failure["webhook_id"]) == (ok["id"], bad["id"])
    assert success["id"] != failure["id"]
    assert (success["response_code"], success["response_body"], success["error"]) == (200, "received", None)
    assert (failure["response_code"], failure["response_body"]) == (500, "received")
    assert "500" in failure["error"]
    for e in (success, failure):
        assert e["attempt"] == 1 and e["worker_id"] and e["duration_ms"] >= 0
        assert parse(e["started_at"]) <= parse(e["finished_at"])
        # Requested up to the fire lead ahead (default 0.5 s), started at the instant, never before.
        assert parse(e["scheduled_at"]) - timedelta(seconds=0.5) <= parse(e["created_at"])
        assert parse(e["scheduled_at"]) <= parse(e["started_at"])
        assert e["job_id"] == job["id"]

    call = next(c for c in receiver.on("/ok") if c.headers["webhook-id"] == success["occurrence_id"])
    assert (call.method, call.query, call.body) == ("POST", {"q": "1"}, "hello")
    assert (call.headers["X-Token"], call.headers["Content-Type"]) == ("abc", "text/plain")
    assert [v for k, v in call.headers.items() if k.lower() == "content-type"] == ["text/plain"]
    put = next(c for c in receiver.on("/fails") if c.headers["webhook-id"] == success["occurrence_id"])
    assert (put.method, put.headers["Content-Type"]) == ("PUT", "application/json")


async def test_executions_filter_page_and_job_run_times_stay_true(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.statuses["/fails"] = 503
    job = await create(api, account_id, schedule="* * * * * *", name="mixed")
    await add_webhook(api, job["id"], receiver.url_for("/ok"))
    await add_webhook(api, job["id"], receiver.url_for("/fails"))

    async def enough() -> dict[str, Any] | None:
        page = await executions(api, job["id"], "?limit=1000")
        statuses = [e["status"] for e in page["items"]]
        return page if statuses.count("success") >= 3 and statuses.count("failure") >= 3 else None

    await eventually(enough, timeout=30, what="three successes and three failures")
    everything = await disable_and_settle(dev_server, api, job["id"])
    items = everything["items"]
    assert everything["total"] == len(items)
    assert [(e["created_at"], e["id"]) for e in items] == sorted(
        ((e["created_at"], e["id"]) for e in items), reverse=True
    )
    for status_filter in ("success", "failure"):
        page = await executions(api, job["id"], f"?status={status_filter}&limit=1000")
        assert page["items"] and all(e["status"] == status_filter for e in page["items"])
        assert page["total"] == sum(1 for e in items if e["status"] == status_filter)
    for status_filter in ("queued", "running", "timed_out", "dead_letter"):
        page = await executions(api, job["id"], f"?status={status_filter}")
        assert page["total"] == sum(1 for e in items if e["status"] == status_filter)

    pages = [await executions(api, job["id"], f"?skip={skip}&limit=2") for skip in range(0, len(items), 2)]
    assert [e["id"] for p in pages for e in p["items"]] == [e["id"] for e in items]
    past = await executions(api, job["id"], f"?skip={len(items)}")
    assert (past["items"], past["total"]) == ([], len(items))
    for query in ("?limit=0", "?limit=1001", "?skip=-1", "?status=exploded"):
        status, error = await api.call("GET", f"/api/jobs/{job['id']}/executions{query}")
        assert_error(status, error, 400, "VALIDATION_ERROR")

    status, got = await api.call("GET", f"/api/jobs/{job['id']}")
    last_fired = max(parse(e["scheduled_at"]) for e in items)
    assert parse(got["last_run_at"]) >= last_fired
    assert got["next_run_at"] is None
    status, resumed = await api.call("PATCH", f"/api/jobs/{job['id']}/enable")
    assert parse(resumed["next_run_at"]) > parse(got["last_run_at"])

    async def fired_again() -> dict[str, Any] | None:
        _, now = await api.call("GET", f"/api/jobs/{job['id']}")
        return now if parse(now["last_run_at"]) > parse(got["last_run_at"]) else None

    now = await eventually(fired_again, timeout=15, what="the job to fire again")
    assert parse(now["next_run_at"]) > parse(now["last_run_at"])


async def test_disabled_and_deleted_jobs_stop_firing(api: Api, account_id: uuid.UUID, receiver: Receiver) -> None:
    clock = await create(api, account_id, schedule="* * * * * *", name="clock")
    await add_webhook(api, clock["id"], receiver.url_for("/clock"))
    paused = await create(api, account_id, schedule="* * * * * *", name="paused")
    await add_webhook(api, paused["id"], receiver.url_for("/paused"))
    deleted = await create(api, account_id, schedule="* * * * * *", name="deleted")
    hook = await add_webhook(api, deleted["id"], receiver.url_for("/deleted"))

    await eventually(lambda: receiver.on("/paused") and receiver.on("/deleted"), what="both jobs firing", timeout=15)
    status, _ = await api.call("PATCH", f"/api/jobs/{paused['id']}/disable")
    assert status == 200
    status, _ = await api.call("DELETE", f"/api/jobs/{deleted['id']}")
    assert status == 204
    stopped_at = time.time()
    # The other job keeps firing: once it has fired three more times, the stopped ones had their chance.
    clock_calls = len(receiver.on("/clock"))
    await eventually(lambda: len(receiver.on("/clock")) >= clock_calls + 3, what="three more ticks")
    for path in ("/paused", "/deleted"):
        # An occurrence already handed to a dispatcher may still arrive just after; nothing later may.
        # Judged by the occurrence's own time: a loaded box may deliver one due before the stop a second late.
        late = [c for c in receiver.on(path) if nominal_of(c.headers["webhook-id"]).timestamp() > stopped_at + 1.0]
        assert late == [], f"{path} fired after it was stopped"
    status, error = await api.call("GET", f"/webhooks/{hook['id']}")
    assert_error(status, error, 404, "WEBHOOK_NOT_FOUND")


async def test_a_reply_with_nul_bytes_is_recorded_and_does_not_stop_the_history(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.reply = "nul\x00byte"
    job = await create(api, account_id, schedule="* * * * * *", name="nul reply")
    await add_webhook(api, job["id"], receiver.url_for("/nul"))

    async def two_recorded() -> dict[str, Any] | None:
        page = await executions(api, job["id"], "?status=success")
        return page if page["total"] >= 2 else None

    page = await eventually(two_recorded, timeout=20, what="two executions recorded after NUL replies")
    assert page["items"][0]["response_body"] == "nul\ufffdbyte"
