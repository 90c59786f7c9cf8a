"""Jobs endpoints of scheduler-service-api.md, against `scheduler dev` with real NATS and Postgres."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from tests.e2e.conftest import DevServer, token_for
from tests.e2e.harness import Api
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

# The document's fields, and this system's delivery policies (docs/api.md: retries and timeouts).
JOB_FIELDS = {
    "retry_policy",
    "timeout_seconds",
    "misfire_policy",
    "overlap_policy",
    "jitter_seconds",
    "start_at",
    "end_at",
    "exclusions",
    "callback_url",
    "failure_callback_url",
    "flow_control",
    "after",
    "id",
    "account_id",
    "name",
    "schedule",
    "type",
    "timezone",
    "enabled",
    "last_run_at",
    "next_run_at",
    "created_at",
    "updated_at",
}


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def next_wall(hour: int, tz: str, after: datetime) -> datetime:
    """The next hh:00 wall time in `tz` after `after` (no DST edge within the test's reach)."""
    local = after.astimezone(ZoneInfo(tz))
    candidate = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if candidate <= local:
        candidate = (candidate + timedelta(days=1)).replace(hour=hour)
    return candidate.astimezone(UTC)


async def create(api: Api, account: uuid.UUID, **fields: Any) -> dict[str, Any]:
    body = {"account_id": str(account), "name": "Daily Backup", "schedule": "0 2 * * *", "type": 1} | fields
    status, job = await api.call("POST", "/api/jobs", json=body)
    assert status == 201, job
    return job  # type: ignore[no-any-return]


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert set(body) == {"detail", "error_code", "status_code"}, body
    assert (body["error_code"], body["status_code"]) == (code, expected_status), body
    assert body["detail"]


async def test_create_returns_the_documented_job_with_defaults_and_next_run(api: Api, account_id: uuid.UUID) -> None:
    before = datetime.now(UTC)
    job = await create(api, account_id)
    assert set(job) == JOB_FIELDS
    assert (job["account_id"], job["name"], job["schedule"], job["type"]) == (
        str(account_id),
        "Daily Backup",
        "0 2 * * *",
        1,
    )
    assert (job["timezone"], job["enabled"], job["last_run_at"]) == ("UTC", True, None)
    assert parse(job["next_run_at"]) == next_wall(2, "UTC", before)
    assert job["created_at"] == job["updated_at"]

    ny = await create(api, account_id, timezone="America/New_York", enabled=False, type=7)
    assert (ny["timezone"], ny["enabled"], ny["type"], ny["next_run_at"]) == ("America/New_York", False, 7, None)

    status, got = await api.call("GET", f"/api/jobs/{job['id']}")
    assert status == 200
    assert got == job


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"schedule": "61 * * * *"}, "INVALID_CRON_EXPRESSION"),
        ({"schedule": "* * *"}, "INVALID_CRON_EXPRESSION"),
        ({"schedule": "0 0 30 2 *"}, "INVALID_CRON_EXPRESSION"),
        ({"timezone": "Mars/Olympus"}, "VALIDATION_ERROR"),
        ({"timezone": "America"}, "VALIDATION_ERROR"),
        ({"name": ""}, "VALIDATION_ERROR"),
        ({"name": "x" * 256}, "VALIDATION_ERROR"),
        ({"name": "nul\u0000byte"}, "VALIDATION_ERROR"),
        ({"timezone": "UTC\u0000"}, "VALIDATION_ERROR"),
        ({"type": "one"}, "VALIDATION_ERROR"),
        ({"type": 2**31}, "VALIDATION_ERROR"),
        ({"enabled": "yes"}, "VALIDATION_ERROR"),
        ({"account_id": "not-a-uuid"}, "VALIDATION_ERROR"),
        ({"nmae": "typo"}, "VALIDATION_ERROR"),
    ],
)
async def test_create_refuses_bad_input_with_400(
    api: Api, account_id: uuid.UUID, body: dict[str, Any], code: str
) -> None:
    full = {"account_id": str(account_id), "name": "n", "schedule": "0 2 * * *", "type": 1} | body
    status, error = await api.call("POST", "/api/jobs", json=full)
    assert_error(status, error, 400, code)
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert (status, page["total"]) == (200, 0)


async def test_missing_fields_and_malformed_json_are_400(api: Api, account_id: uuid.UUID) -> None:
    status, error = await api.call("POST", "/api/jobs", json={"account_id": str(account_id), "name": "n"})
    assert_error(status, error, 400, "VALIDATION_ERROR")
    assert "type" in error["detail"]
    # Neither a schedule nor `after` (a chain's link): the job would have no way to fire.
    status, error = await api.call("POST", "/api/jobs", json={"account_id": str(account_id), "name": "n", "type": 1})
    assert_error(status, error, 400, "VALIDATION_ERROR")
    assert "schedule" in error["detail"], error
    status, error = await api.call(
        "POST", "/api/jobs", data=b'{"account_id": ', headers={"Content-Type": "application/json"}
    )
    assert_error(status, error, 400, "VALIDATION_ERROR")


async def test_list_pages_newest_first_with_total_and_edges(api: Api, account_id: uuid.UUID) -> None:
    created = [await create(api, account_id, name=f"job {i}", enabled=i % 2 == 0) for i in range(5)]
    newest_first = [j["id"] for j in reversed(created)]

    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert status == 200
    assert (page["total"], page["skip"], page["limit"]) == (5, 0, 100)
    assert [j["id"] for j in page["items"]] == newest_first
    assert all(set(j) == JOB_FIELDS for j in page["items"])

    seen = []
    for skip in (0, 2, 4):
        status, page = await api.call("GET", f"/api/jobs?account_id={account_id}&skip={skip}&limit=2")
        assert (status, page["total"], page["skip"], page["limit"]) == (200, 5, skip, 2)
        seen += [j["id"] for j in page["items"]]
    assert seen == newest_first

    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}&skip=5")
    assert (status, page["items"], page["total"]) == (200, [], 5)
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}&skip=1000&limit=1000")
    assert (status, page["items"], page["total"], page["limit"]) == (200, [], 5, 1000)

    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}&enabled=true")
    assert (status, page["total"]) == (200, 3)
    assert {j["id"] for j in page["items"]} == {j["id"] for j in created if j["enabled"]}
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}&enabled=false&limit=1")
    assert (status, page["total"], len(page["items"])) == (200, 2, 1)
    assert page["items"][0]["id"] == created[3]["id"]

    for query in ("limit=0", "limit=1001", "skip=-1", "limit=abc", "enabled=maybe"):
        status, error = await api.call("GET", f"/api/jobs?account_id={account_id}&{query}")
        assert_error(status, error, 400, "VALIDATION_ERROR")
    status, error = await api.call("GET", "/api/jobs")
    assert_error(status, error, 400, "VALIDATION_ERROR")
    status, error = await api.call("GET", "/api/jobs?account_id=nope")
    assert_error(status, error, 400, "VALIDATION_ERROR")


async def test_update_changes_any_subset_and_recomputes_next_run(api: Api, account_id: uuid.UUID) -> None:
    job = await create(api, account_id)
    path = f"/api/jobs/{job['id']}"

    status, renamed = await api.call("PUT", path, json={"name": "Updated Job Name"})
    assert status == 200
    assert renamed["name"] == "Updated Job Name"
    assert {k: v for k, v in renamed.items() if k not in ("name", "updated_at")} == {
        k: v for k, v in job.items() if k not in ("name", "updated_at")
    }
    assert parse(renamed["updated_at"]) > parse(job["updated_at"])

    before = datetime.now(UTC)
    status, moved = await api.call(
        "PUT", path, json={"schedule": "0 3 * * *", "timezone": "America/New_York", "type": 2}
    )
    assert status == 200
    assert (moved["schedule"], moved["timezone"], moved["type"]) == ("0 3 * * *", "America/New_York", 2)
    assert parse(moved["next_run_at"]) == next_wall(3, "America/New_York", before)

    before = datetime.now(UTC)
    status, tz_only = await api.call("PUT", path, json={"timezone": "Asia/Tokyo"})
    assert status == 200
    assert parse(tz_only["next_run_at"]) == next_wall(3, "Asia/Tokyo", before)

    status, off = await api.call("PUT", path, json={"enabled": False})
    assert (status, off["enabled"], off["next_run_at"]) == (200, False, None)

    status, same = await api.call("PUT", path, json={})
    assert status == 200
    assert same == off

    status, got = await api.call("GET", path)
    assert got == off


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"schedule": "every day"}, "INVALID_CRON_EXPRESSION"),
        ({"timezone": "Nowhere/City"}, "VALIDATION_ERROR"),
        ({"name": None}, "VALIDATION_ERROR"),
        ({"enabled": 3}, "VALIDATION_ERROR"),
        ({"account_id": str(uuid.uuid4())}, "VALIDATION_ERROR"),
    ],
)
async def test_update_refuses_bad_input_and_changes_nothing(
    api: Api, account_id: uuid.UUID, body: dict[str, Any], code: str
) -> None:
    job = await create(api, account_id)
    status, error = await api.call("PUT", f"/api/jobs/{job['id']}", json=body)
    assert_error(status, error, 400, code)
    status, got = await api.call("GET", f"/api/jobs/{job['id']}")
    assert got == job


async def test_enable_and_disable(api: Api, account_id: uuid.UUID) -> None:
    job = await create(api, account_id)
    for action, enabled in (("disable", False), ("disable", False), ("enable", True), ("enable", True)):
        status, body = await api.call("PATCH", f"/api/jobs/{job['id']}/{action}")
        assert status == 200, body
        assert (body["id"], body["enabled"]) == (job["id"], enabled)
        assert (body["next_run_at"] is None) == (not enabled)
        assert "updated_at" in body
        status, got = await api.call("GET", f"/api/jobs/{job['id']}")
        assert got["enabled"] is enabled


async def test_delete_is_hard_and_a_second_delete_is_404(api: Api, account_id: uuid.UUID) -> None:
    keep, gone = await create(api, account_id, name="keep"), await create(api, account_id, name="gone")
    status, body = await api.call("DELETE", f"/api/jobs/{gone['id']}")
    assert (status, body) == (204, None)
    status, error = await api.call("GET", f"/api/jobs/{gone['id']}")
    assert_error(status, error, 404, "JOB_NOT_FOUND")
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert [j["id"] for j in page["items"]] == [keep["id"]]
    for method, suffix in (("DELETE", ""), ("PUT", ""), ("PATCH", "/enable"), ("GET", "/executions")):
        status, error = await api.call(method, f"/api/jobs/{gone['id']}{suffix}", json={})
        assert_error(status, error, 404, "JOB_NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("PUT", ""), ("DELETE", ""), ("PATCH", "/enable"), ("PATCH", "/disable"), ("GET", "/executions")],
)
async def test_unknown_jobs_are_404(api: Api, method: str, suffix: str) -> None:
    for job_id in (str(uuid.uuid4()), "not-a-uuid"):
        status, error = await api.call(method, f"/api/jobs/{job_id}{suffix}", json={})
        assert_error(status, error, 404, "JOB_NOT_FOUND")


async def test_another_accounts_jobs_are_403_and_unchanged(dev_server: DevServer, api: Api) -> None:
    owner = uuid.uuid4()
    async with aiohttp.ClientSession() as session:
        theirs = Api(session, dev_server.base_url, {"Authorization": f"Bearer {token_for(owner)}"})
        job = await create(theirs, owner)
        attempts = [
            ("GET", f"/api/jobs/{job['id']}", None),
            ("PUT", f"/api/jobs/{job['id']}", {"name": "mine now"}),
            ("DELETE", f"/api/jobs/{job['id']}", None),
            ("PATCH", f"/api/jobs/{job['id']}/disable", None),
            ("PATCH", f"/api/jobs/{job['id']}/enable", None),
            ("GET", f"/api/jobs/{job['id']}/executions", None),
            ("GET", f"/api/jobs?account_id={owner}", None),
            ("POST", "/api/jobs", {"account_id": str(owner), "name": "n", "schedule": "0 2 * * *", "type": 1}),
        ]
        for method, path, body in attempts:
            status, error = await api.call(method, path, json=body)
            assert_error(status, error, 403, "FORBIDDEN")
        status, got = await theirs.call("GET", f"/api/jobs/{job['id']}")
        assert got == job
        status, page = await theirs.call("GET", f"/api/jobs?account_id={owner}")
        assert page["total"] == 1

        admin = Api(session, dev_server.base_url, {"Authorization": f"Bearer {token_for(service_role=True)}"})
        status, got = await admin.call("GET", f"/api/jobs/{job['id']}")
        assert (status, got) == (200, job)
        status, page = await admin.call("GET", f"/api/jobs?account_id={owner}")
        assert (status, page["total"]) == (200, 1)


async def test_concurrent_updates_never_lose_one_or_fail_with_500(api: Api, account_id: uuid.UUID) -> None:
    job = await create(api, account_id)
    results = await asyncio.gather(
        *(api.call("PUT", f"/api/jobs/{job['id']}", json={"name": f"writer {i}"}) for i in range(12))
    )
    statuses = sorted(status for status, _ in results)
    assert set(statuses) <= {200, 409}, results
    for status, body in results:
        if status == 409:
            assert_error(status, body, 409, "CONFLICT")
    status, got = await api.call("GET", f"/api/jobs/{job['id']}")
    winners = [body for status, body in results if status == 200]
    assert winners, "every writer lost"
    last = max(winners, key=lambda body: parse(body["updated_at"]))
    assert got["name"] == last["name"]
    assert got["updated_at"] == last["updated_at"]


async def test_a_job_created_with_its_webhook_never_fires_without_it(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    hook = {"url": receiver.url_for("/born"), "method": "POST", "body_template": '{"a": 1}'}
    job = await create(api, account_id, schedule="* * * * * *", webhooks=[hook])
    assert set(job) == JOB_FIELDS | {"webhooks"} and job["enabled"], job
    (created,) = job["webhooks"]
    assert (created["job_id"], created["url"], created["body_template"], created["enabled"]) == (
        job["id"],
        hook["url"],
        hook["body_template"],
        True,
    )
    status, got = await api.call("GET", f"/webhooks/{created['id']}")
    assert (status, got) == (200, created)
    await eventually(lambda: len(receiver.on("/born")) >= 1, timeout=20, what="the first occurrence delivered")
    status, _ = await api.call("PATCH", f"/api/jobs/{job['id']}/disable")
    assert status == 200

    async def recorded() -> dict[str, Any] | None:
        # The receiver's call can come before the projector has written the request.
        status, page = await api.call("GET", f"/api/jobs/{job['id']}/executions?limit=1000")
        assert status == 200, page
        return page if page["items"] else None

    page = await eventually(recorded, timeout=20, what="the delivered occurrence recorded")
    assert {e["webhook_id"] for e in page["items"]} == {created["id"]}, "every occurrence went to the webhook"
    assert receiver.on("/born")[0].body == '{"a": 1}'


@pytest.mark.parametrize(
    "hook",
    [
        {"url": "not a url", "method": "POST"},
        {"url": "https://example.com/h", "method": "POST", "headers": {"Bad Header": "x"}},
        {"url": "https://example.com/h", "method": "POST", "body_template": "{{#unclosed}}"},
        {"url": "https://example.com/h", "method": "TRACE"},
        {"url": "https://example.com/h", "job_id": str(uuid.uuid4())},
    ],
)
async def test_a_job_with_a_bad_webhook_is_refused_whole(api: Api, account_id: uuid.UUID, hook: dict[str, Any]) -> None:
    status, error = await api.call(
        "POST",
        "/api/jobs",
        json={"account_id": str(account_id), "name": "n", "schedule": "0 2 * * *", "type": 1, "webhooks": [hook]},
    )
    assert_error(status, error, 400, "VALIDATION_ERROR")
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert (status, page["total"]) == (200, 0), "no job without its webhook"


async def test_an_enabled_job_without_a_webhook_records_its_occurrences_skipped_not_failed(
    api: Api, account_id: uuid.UUID
) -> None:
    # The document creates a job enabled and attaches its webhook afterwards; what falls due in between has nothing
    # to run, so it is recorded as skipped with the reason: no failure, no retry, no dead letter.
    job = await create(api, account_id, schedule="* * * * * *")
    assert job["enabled"] and "webhooks" not in job

    async def skipped() -> list[dict[str, Any]] | None:
        status, page = await api.call("GET", f"/api/jobs/{job['id']}/executions?status=skipped")
        assert status == 200
        items: list[dict[str, Any]] = page["items"]
        return items if len(items) >= 2 else None

    items = await eventually(skipped, timeout=20, what="two occurrences recorded skipped")
    assert all("no enabled webhook" in e["error"] and e["attempt"] == 1 for e in items), items
    status, _ = await api.call("PATCH", f"/api/jobs/{job['id']}/disable")
    assert status == 200
    status, page = await api.call("GET", f"/api/jobs/{job['id']}/executions?limit=1000")
    assert status == 200
    assert {e["status"] for e in page["items"]} <= {"skipped", "queued"}, page["items"]
    status, dead = await api.call("GET", f"/api/dead-letters?account_id={account_id}&job_id={job['id']}")
    assert (status, dead["total"]) == (200, 0)


async def test_a_create_retried_with_its_idempotency_key_is_one_job(api: Api, account_id: uuid.UUID) -> None:
    body = {"account_id": str(account_id), "name": "once", "schedule": "0 2 * * *", "type": 1}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    status, first = await api.call("POST", "/api/jobs", json=body, headers=key)
    assert status == 201, first
    status, again = await api.call("POST", "/api/jobs", json=body, headers=key)
    assert (status, again) == (201, first)
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert (status, [j["id"] for j in page["items"]]) == (200, [first["id"]])

    status, error = await api.call("POST", "/api/jobs", json=body | {"name": "other"}, headers=key)
    assert_error(status, error, 409, "IDEMPOTENCY_KEY_REUSED")
    status, _ = await api.call("DELETE", f"/api/jobs/{first['id']}")
    assert status == 204
    status, error = await api.call("POST", "/api/jobs", json=body, headers=key)
    assert_error(status, error, 409, "IDEMPOTENCY_KEY_REUSED")
    for bad in ("x" * 256, "caf\u00e9"):
        status, error = await api.call("POST", "/api/jobs", json=body, headers={"Idempotency-Key": bad})
        assert_error(status, error, 400, "VALIDATION_ERROR")
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert (status, page["total"]) == (200, 0)


async def test_a_retried_create_answers_the_job_as_it_is_now_with_its_last_run(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    hook = {"url": receiver.url_for("/keyed"), "method": "POST"}
    body = {"account_id": str(account_id), "name": "keyed", "schedule": "* * * * * *", "type": 1, "webhooks": [hook]}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    status, first = await api.call("POST", "/api/jobs", json=body, headers=key)
    assert status == 201 and first["last_run_at"] is None, first

    async def ran() -> bool:
        status, job = await api.call("GET", f"/api/jobs/{first['id']}")
        return status == 200 and job["last_run_at"] is not None

    await eventually(ran, timeout=20, what="the job's first run in the read model")
    status, again = await api.call("POST", "/api/jobs", json=body, headers=key)
    assert status == 201 and again["id"] == first["id"], again
    assert again["last_run_at"] is not None, "a retry answered the job as created, not as it is now"
    assert [w["id"] for w in again["webhooks"]] == [w["id"] for w in first["webhooks"]]
    status, _ = await api.call("PATCH", f"/api/jobs/{first['id']}/disable")
    assert status == 200
