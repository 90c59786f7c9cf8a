"""NEXUS surface: the same auth as the other surface, the stats route, ids, filters and the execute example."""

from __future__ import annotations

import uuid
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from tests.e2e.conftest import DevServer, token_for
from tests.e2e.harness import Api
from tests.e2e.test_nexus_api import DOCUMENT_EXAMPLE, assert_422, nexus_create, nexus_webhook_job, parse
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


async def test_every_job_route_needs_a_token_and_stays_in_its_accounts(dev_server: DevServer, api: Api) -> None:
    job = await nexus_create(api)
    routes = [
        ("POST", "/api/v1/jobs/", DOCUMENT_EXAMPLE),
        ("GET", "/api/v1/jobs/", None),
        ("GET", "/api/v1/jobs/stats/overview", None),
        ("GET", f"/api/v1/jobs/{job['id']}", None),
        ("PUT", f"/api/v1/jobs/{job['id']}", {"name": "mine now"}),
        ("DELETE", f"/api/v1/jobs/{job['id']}", None),
        ("POST", f"/api/v1/jobs/{job['id']}/execute", None),
        ("POST", f"/api/v1/jobs/{job['id']}/pause", None),
        ("POST", f"/api/v1/jobs/{job['id']}/resume", None),
        ("GET", f"/api/v1/jobs/{job['id']}/executions", None),
    ]
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            anonymous = Api(session, dev_server.base_url, headers)
            for method, path, body in routes:
                status, error = await anonymous.call(method, path, json=body)
                assert status == 401, (method, path, error)
                assert isinstance(error["detail"], str) and error["detail"], error

        stranger = Api(session, dev_server.base_url, {"Authorization": f"Bearer {token_for(uuid.uuid4())}"})
        for method, path, body in routes[3:]:
            status, error = await stranger.call(method, path, json=body)
            assert status == 403, (method, path, error)
            assert isinstance(error["detail"], str), error
        status, page = await stranger.call("GET", "/api/v1/jobs/")
        assert (status, page) == (200, []), "another account's jobs are not listed"
        status, stats = await stranger.call("GET", "/api/v1/jobs/stats/overview")
        assert (status, stats["total_jobs"]) == (200, 0)
        # A token for several accounts must say which one a new job belongs to.
        several = Api(
            session, dev_server.base_url, {"Authorization": f"Bearer {token_for(uuid.uuid4(), uuid.uuid4())}"}
        )
        status, error = await several.call("POST", "/api/v1/jobs/", json=DOCUMENT_EXAMPLE)
        assert_422(status, error, "X-Account-Id")
    status, unchanged = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert (status, unchanged) == (200, job)


async def test_an_account_header_the_token_does_not_hold_is_403(api: Api, account_id: uuid.UUID) -> None:
    job = await nexus_create(api)
    stranger = {"X-Account-Id": str(uuid.uuid4())}
    for method, path in (
        ("GET", "/api/v1/jobs/"),
        ("GET", "/api/v1/jobs/stats/overview"),
        ("GET", f"/api/v1/jobs/{job['id']}"),
        ("POST", f"/api/v1/jobs/{job['id']}/pause"),
    ):
        status, error = await api.call(method, path, headers=stranger)
        assert status == 403, (method, path, error)
        assert set(error) == {"detail"} and isinstance(error["detail"], str), error
    status, got = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert got["is_active"], "nothing was changed"
    status, error = await api.call("GET", "/api/v1/jobs/", headers={"X-Account-Id": "nope"})
    assert_422(status, error, "X-Account-Id")
    mine = {"X-Account-Id": str(account_id)}
    status, page = await api.call("GET", "/api/v1/jobs/", headers=mine)
    assert (status, [j["id"] for j in page]) == (200, [job["id"]])
    status, stats = await api.call("GET", "/api/v1/jobs/stats/overview", headers=mine)
    assert (status, stats["total_jobs"]) == (200, 1)


async def test_stats_overview_counts_the_callers_jobs_and_runs(api: Api, receiver: Receiver) -> None:
    active = await nexus_webhook_job(api, receiver.url_for("/stats"), cron_expression="0 0 1 1 *")
    await nexus_create(api, is_active=False)
    status, accepted = await api.call("POST", f"/api/v1/jobs/{active['id']}/execute")
    assert status == 200, accepted

    async def counted() -> dict[str, Any] | None:
        status, stats = await api.call("GET", "/api/v1/jobs/stats/overview")
        assert status == 200, stats  # not shadowed by /jobs/{job_id}: "stats" is no integer id
        return stats if stats["successful_executions"] == 1 else None

    stats = await eventually(counted, timeout=20, what="the manual run in the stats")
    assert stats == {
        "total_jobs": 2,
        "active_jobs": 1,
        "paused_jobs": 1,
        "total_executions": 1,
        "successful_executions": 1,
        "failed_executions": 0,
        "running_executions": 0,
        "average_duration": stats["average_duration"],
        "last_24h_executions": 1,
    }
    assert 0 <= stats["average_duration"] < 20


async def test_ids_are_integers_that_are_never_reused(api: Api) -> None:
    first = await nexus_create(api)
    status, _ = await api.call("DELETE", f"/api/v1/jobs/{first['id']}")
    assert status == 204
    second = await nexus_create(api)
    assert second["id"] > first["id"]
    status, gone = await api.call("GET", f"/api/v1/jobs/{first['id']}")
    assert (status, gone) == (404, {"detail": "Job not found"})
    status, again = await api.call("GET", f"/api/v1/jobs/{second['id']}")
    assert (status, again["id"], again["uuid"]) == (200, second["id"], second["uuid"])


async def test_tags_filter_needs_every_tag_and_times_follow_the_jobs_zone(api: Api) -> None:
    both = await nexus_create(api, tags=["report", "analytics"])
    await nexus_create(api, tags=["report"])
    await nexus_create(api, tags=["analytics", "other"])
    status, page = await api.call("GET", "/api/v1/jobs/?tags=report,analytics")
    assert (status, [j["id"] for j in page]) == (200, [both["id"]])
    # "0 9 * * 1-5" in US/Eastern: 09:00 on a weekday there, whatever the offset from UTC that day.
    local = parse(both["next_run_at"]).astimezone(ZoneInfo("US/Eastern"))
    assert (local.hour, local.minute, local.weekday() < 5) == (9, 0, True), local
    assert (both["retry_delay"], type(both["retry_delay"])) == (60, int), "whole seconds are integers, as documented"


async def test_the_documented_execute_body_overrides_one_run(api: Api) -> None:
    job = await nexus_create(api, cron_expression="0 0 1 1 *")
    status, accepted = await api.call(
        "POST", f"/api/v1/jobs/{job['id']}/execute", json={"task_args": [1, 2], "task_kwargs": {"override": True}}
    )
    assert status == 200, accepted
    assert accepted["message"] == "Job execution started"
    status, runs = await api.call("GET", f"/api/v1/jobs/{job['id']}/executions")
    assert status == 200, runs
    assert [(r["task_id"], r["status"], r["attempt_number"]) for r in runs] == [(accepted["task_id"], "pending", 1)]
    status, unchanged = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert (unchanged["task_args"], unchanged["task_kwargs"]) == ([], {"format": "pdf"}), "overrides are per run"
    for query in ("?limit=501", "?limit=0", "?skip=-1"):
        status, body = await api.call("GET", f"/api/v1/jobs/{job['id']}/executions{query}")
        assert status == 422, (query, body)
    status, page = await api.call("GET", f"/api/v1/jobs/{job['id']}/executions?skip=1&limit=500")
    assert (status, page) == (200, [])
    for suffix in ("/execute", "/resume"):
        status, body = await api.call("POST", f"/api/v1/jobs/999999999{suffix}")
        assert (status, body) == (404, {"detail": "Job not found"}), suffix
