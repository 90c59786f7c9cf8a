"""The NEXUS API (nexus-scheduler-api.md, /api/v1) against `scheduler dev`, on the same jobs as /api/jobs."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import nats
import pytest
from openapi_spec_validator import validate

from shared.contracts.codec import decode_execution_event
from shared.contracts.executions import ExecutionRequested
from tests.e2e.conftest import DevServer, quiesced
from tests.e2e.harness import Api, nominal_of
from tests.e2e.test_api_webhooks_and_executions import add_webhook
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

# The document's create example, as written.
DOCUMENT_EXAMPLE = {
    "name": "Daily Report",
    "description": "Generate daily analytics report",
    "job_type": "cron",
    "cron_expression": "0 9 * * 1-5",
    "interval_seconds": None,
    "scheduled_time": None,
    "calendar_rule": None,
    "task_name": "tasks.generate_report",
    "task_args": [],
    "task_kwargs": {"format": "pdf"},
    "timezone": "US/Eastern",
    "is_active": True,
    "max_retries": 3,
    "retry_delay": 60,
    "retry_backoff": True,
    "priority": 5,
    "tags": ["report", "analytics"],
    "metadata": {},
    "created_by": "admin",
}


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def nexus_create(api: Api, **fields: Any) -> dict[str, Any]:
    status, job = await api.call("POST", "/api/v1/jobs/", json=DOCUMENT_EXAMPLE | fields)
    assert status == 201, job
    return job  # type: ignore[no-any-return]


async def nexus_webhook_job(api: Api, url: str, *, active: bool = True, **fields: Any) -> dict[str, Any]:
    """A NEXUS job that calls a webhook: created paused (an active job needs something to run), given its webhook
    through the other surface, then resumed."""
    job = await nexus_create(api, task_name=None, task_kwargs={}, **fields | {"is_active": False})
    await add_webhook(api, job["uuid"], url)
    if active:
        status, body = await api.call("POST", f"/api/v1/jobs/{job['id']}/resume")
        assert status == 200, body
    status, job = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert status == 200, job
    return job


def assert_422(status: int, body: Any, field: str) -> None:
    assert status == 422, body
    assert isinstance(body["detail"], list) and body["detail"], body
    assert any(field in item["loc"] for item in body["detail"]), body
    assert all(set(item) == {"loc", "msg", "type"} for item in body["detail"]), body


async def test_document_example_round_trips_and_shows_on_the_other_surface(api: Api, account_id: uuid.UUID) -> None:
    job = await nexus_create(api)
    assert isinstance(job["id"], int)
    for key in ("name", "description", "job_type", "cron_expression", "task_name", "task_args", "task_kwargs"):
        assert job[key] == DOCUMENT_EXAMPLE[key], key
    assert (job["timezone"], job["is_active"], job["status"], job["priority"]) == ("US/Eastern", True, "pending", 5)
    assert (job["max_retries"], job["retry_delay"], job["retry_backoff"]) == (3, 60, True)
    assert (job["tags"], job["metadata"], job["created_by"]) == (["report", "analytics"], {}, "admin")
    local = parse(job["next_run_at"]).astimezone(ZoneInfo("US/Eastern"))
    assert (local.hour, local.minute, local.weekday() < 5) == (9, 0, True), local

    status, got = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert (status, got) == (200, job)
    status, other = await api.call("GET", f"/api/jobs/{job['uuid']}")
    assert status == 200, other
    assert (other["name"], other["schedule"], other["timezone"], other["account_id"]) == (
        "Daily Report",
        "0 9 * * 1-5",
        "US/Eastern",
        str(account_id),
    )

    status, _ = await api.call("PUT", f"/api/jobs/{job['uuid']}", json={"name": "Renamed there"})
    assert status == 200
    status, seen = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert seen["name"] == "Renamed there"

    status, created_there = await api.call(
        "POST",
        "/api/jobs",
        json={"account_id": str(account_id), "name": "from the other side", "schedule": "*/5 * * * *", "type": 3},
    )
    assert status == 201
    status, page = await api.call("GET", "/api/v1/jobs/?job_type=cron")
    assert status == 200
    mirrored = next(j for j in page if j["uuid"] == created_there["id"])
    assert (mirrored["cron_expression"], mirrored["task_name"], mirrored["status"]) == ("*/5 * * * *", None, "pending")


async def test_update_pause_resume_delete(api: Api) -> None:
    job = await nexus_create(api)
    status, updated = await api.call(
        "PUT", f"/api/v1/jobs/{job['id']}", json={"name": "Updated Job Name", "is_active": False, "priority": 7}
    )
    assert status == 200, updated
    assert (updated["name"], updated["is_active"], updated["priority"], updated["status"]) == (
        "Updated Job Name",
        False,
        7,
        "paused",
    )
    status, body = await api.call("POST", f"/api/v1/jobs/{job['id']}/resume")
    assert (status, body) == (200, {"message": "Job resumed"})
    status, body = await api.call("POST", f"/api/v1/jobs/{job['id']}/pause")
    assert (status, body) == (200, {"message": "Job paused"})
    status, got = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert (got["is_active"], got["status"], got["next_run_at"]) == (False, "paused", None)
    status, body = await api.call("DELETE", f"/api/v1/jobs/{job['id']}")
    assert (status, body) == (204, None)
    gone = (("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/pause"), ("POST", "/resume"), ("POST", "/execute"))
    for method, suffix in (*gone, ("GET", "/executions")):
        status, body = await api.call(method, f"/api/v1/jobs/{job['id']}{suffix}", json={})
        assert (status, body) == (404, {"detail": "Job not found"}), (method, suffix)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron_expression": None}, "cron_expression"),
        ({"cron_expression": "61 * * * *"}, "cron_expression"),
        ({"job_type": "interval", "cron_expression": None}, "interval_seconds"),
        ({"job_type": "interval", "cron_expression": None, "interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": 30}, "interval_seconds"),
        ({"job_type": "date", "cron_expression": None}, "scheduled_time"),
        ({"job_type": "calendar", "cron_expression": None, "calendar_rule": {"weekdays": [9]}}, "calendar_rule"),
        ({"job_type": "calendar", "cron_expression": None, "calendar_rule": {"when": "soon"}}, "calendar_rule"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"name": ""}, "name"),
        ({"max_retries": 11}, "max_retries"),
        ({"retry_delay": -1}, "retry_delay"),
        ({"priority": 0}, "priority"),
        ({"task_name": "bad name!"}, "task_name"),
        ({"tags": ["a,b"]}, "tags"),
        ({"job_type": "hourly"}, "job_type"),
    ],
)
async def test_bad_jobs_are_422_with_the_field(api: Api, fields: dict[str, Any], field: str) -> None:
    status, body = await api.call("POST", "/api/v1/jobs/", json=DOCUMENT_EXAMPLE | fields)
    assert_422(status, body, field)
    if fields.get(field, "absent") is None or fields == {"job_type": "date", "cron_expression": None}:
        assert body["detail"][0]["type"] == "value_error.missing", body
    status, page = await api.call("GET", "/api/v1/jobs/")
    assert (status, page) == (200, [])


async def test_list_filters_and_pagination_as_documented(api: Api) -> None:
    report = await nexus_create(api, tags=["report", "analytics"])
    other = await nexus_create(api, tags=["report"], is_active=False)
    interval = await nexus_create(api, job_type="interval", cron_expression=None, interval_seconds=3600, tags=[])
    status, everything = await api.call("GET", "/api/v1/jobs/")
    assert [j["id"] for j in everything] == [interval["id"], other["id"], report["id"]]
    cases = {
        "?is_active=true&job_type=cron&limit=50": [report["id"]],
        "?is_active=true&job_type=cron&tags=report,analytics": [report["id"]],
        "?tags=report": [other["id"], report["id"]],
        "?job_type=interval": [interval["id"]],
        "?skip=1&limit=1": [other["id"]],
        "?skip=20&limit=10": [],
    }
    for query, expected in cases.items():
        status, page = await api.call("GET", f"/api/v1/jobs/{query}")
        assert status == 200, page
        assert [j["id"] for j in page] == expected, query
    for query in ("?limit=0", "?limit=1001", "?job_type=weekly", "?is_active=perhaps"):
        status, body = await api.call("GET", f"/api/v1/jobs/{query}")
        assert status == 422, (query, body)


async def test_cron_tools_as_documented(dev_server: DevServer) -> None:
    async with aiohttp.ClientSession() as session:
        anonymous = Api(session, dev_server.base_url, {})  # the cron tools hold no account data
        before = datetime.now(UTC)
        status, body = await anonymous.call(
            "POST", "/api/v1/cron/validate", json={"expression": "*/5 * * * *", "timezone": "UTC"}
        )
        assert status == 200, body
        assert (body["is_valid"], body["description"], body["error"]) == (True, "Every 5 minutes", None)
        runs = [parse(r) for r in body["next_runs"]]
        assert len(runs) == 5 and runs[0] > before
        assert all(r.minute % 5 == 0 and r.second == 0 for r in runs)
        assert all(b - a == timedelta(minutes=5) for a, b in itertools.pairwise(runs))

        status, body = await anonymous.call("POST", "/api/v1/cron/validate", json={"expression": "*/10 * * * * *"})
        assert (status, body["is_valid"], body["description"]) == (200, True, "Every 10 seconds")
        runs = [parse(r) for r in body["next_runs"]]
        assert all(b - a == timedelta(seconds=10) for a, b in itertools.pairwise(runs))

        status, body = await anonymous.call(
            "POST", "/api/v1/cron/validate", json={"expression": "0 9 * * *", "timezone": "America/New_York"}
        )
        assert all(parse(r).astimezone(ZoneInfo("America/New_York")).hour == 9 for r in body["next_runs"])

        for bad in (
            {"expression": "61 * * * *"},
            {"expression": "* * *"},
            {"expression": "0 9 * * *", "timezone": "X/Y"},
        ):
            status, body = await anonymous.call("POST", "/api/v1/cron/validate", json=bad)
            assert status == 200, body
            assert (body["is_valid"], body["next_runs"], body["description"]) == (False, [], None)
            assert body["error"]
        status, body = await anonymous.call("POST", "/api/v1/cron/validate", json={"timezone": "UTC"})
        assert_422(status, body, "expression")

        status, presets = await anonymous.call("GET", "/api/v1/cron/presets")
    assert status == 200
    assert set(presets) == {
        "every_minute", "every_5_minutes", "every_15_minutes", "every_30_minutes", "hourly", "daily_midnight",
        "daily_noon", "weekly_sunday", "weekly_monday", "monthly", "yearly", "weekdays_9am", "weekends_10am",
    }  # fmt: skip
    assert presets["hourly"] == {"expression": "0 * * * *", "description": "Every hour"}
    assert presets["daily_midnight"] == {"expression": "0 0 * * *", "description": "Daily at midnight"}
    assert presets["every_minute"] == {"expression": "* * * * *", "description": "Every minute"}


async def test_execute_now_and_executions(api: Api, account_id: uuid.UUID, receiver: Receiver) -> None:
    job = await nexus_webhook_job(api, receiver.url_for("/now"), cron_expression="0 0 1 1 *")
    status, accepted = await api.call("POST", f"/api/v1/jobs/{job['id']}/execute")
    assert status == 200, accepted
    assert accepted["message"] == "Job execution started"

    async def done() -> list[dict[str, Any]] | None:
        status, page = await api.call("GET", f"/api/v1/jobs/{job['id']}/executions")
        assert status == 200, page
        return page if page and page[0]["status"] == "completed" else None

    page = await eventually(done, timeout=20, what="the manual run to complete")
    run = page[0]
    assert (run["task_id"], run["job_id"], run["attempt_number"], run["is_retry"]) == (
        accepted["task_id"],
        job["id"],
        1,
        False,
    )
    assert run["worker_name"]
    assert isinstance(run["duration_seconds"], int), "whole seconds on this surface, as the document shows"
    status, after = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert status == 200, after
    assert after["last_run_at"] is not None, "a run on demand is the job's last run"
    assert parse(after["last_run_at"]) == parse(run["scheduled_at"])
    assert after["next_run_at"] == job["next_run_at"], "the schedule is untouched"
    status, there = await api.call("GET", f"/api/jobs/{job['uuid']}")
    assert status == 200, there
    assert parse(there["last_run_at"]) == parse(after["last_run_at"]) and there["next_run_at"] == job["next_run_at"]
    status, body = await api.call("POST", f"/api/v1/jobs/{job['id']}/execute", json={"task_args": [1, 2]})
    assert_422(status, body, "task_args")


async def test_an_interval_job_fires_at_its_interval(api: Api, receiver: Receiver) -> None:
    start = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
    await nexus_webhook_job(
        api,
        receiver.url_for("/interval"),
        job_type="interval",
        cron_expression=None,
        interval_seconds=2,
        start_time=start.isoformat(),
    )
    await eventually(lambda: len(receiver.on("/interval")) >= 3, timeout=20, what="three interval runs")
    nominal = sorted({nominal_of(c.headers["webhook-id"]) for c in receiver.on("/interval")})
    assert all((t - start).total_seconds() % 2 == 0 for t in nominal), nominal
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(nominal)), nominal


async def test_runs_due_at_the_same_moment_are_queued_highest_priority_first(
    api: Api, dev_server: DevServer, account_id: uuid.UUID
) -> None:
    # Every job must be in the ticker's index before their moment comes (its lead included), on a loaded box too.
    at = (datetime.now(UTC) + timedelta(seconds=8)).replace(microsecond=0)
    priorities = {}
    for priority in (2, 9, 5, 10, 1):
        job = await nexus_create(
            api,
            job_type="date",
            cron_expression=None,
            scheduled_time=at.isoformat(),
            priority=priority,
        )
        priorities[uuid.UUID(job["uuid"])] = priority
    assert datetime.now(UTC) < at - timedelta(seconds=1), "the jobs were made too late for the test to mean much"
    nc = await nats.connect(dev_server.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"{dev_server.namespace}.executions.requested.{account_id}.*", ordered_consumer=True)
        queued: list[int] = []
        while len(queued) < len(priorities):
            event = decode_execution_event((await sub.next_msg(timeout=30)).data)
            if isinstance(event, ExecutionRequested) and event.job_id in priorities:
                queued.append(priorities[event.job_id])
    finally:
        await nc.close()
    assert queued == [10, 9, 5, 2, 1], "the stream holds them in priority order, so dispatchers take them so"


async def test_a_date_job_fires_once_and_is_completed(api: Api, receiver: Receiver) -> None:
    # Made, given its webhook and resumed before it is due, on a loaded box too.
    at = (datetime.now(UTC) + timedelta(seconds=8)).replace(microsecond=0)
    job = await nexus_webhook_job(
        api, receiver.url_for("/once"), job_type="date", cron_expression=None, scheduled_time=at.isoformat()
    )
    assert datetime.now(UTC) < at - timedelta(seconds=1), "the job was made too late for the test to mean much"
    assert parse(job["next_run_at"]) == at

    async def completed() -> dict[str, Any] | None:
        status, got = await api.call("GET", f"/api/v1/jobs/{job['id']}")
        assert status == 200, got
        return got if got["status"] == "completed" else None

    done = await eventually(completed, timeout=30, what="the date job to complete")
    assert (parse(done["last_run_at"]), done["next_run_at"]) == (at, None)
    assert [nominal_of(c.headers["webhook-id"]) for c in receiver.on("/once")] == [at]
    status, runs = await api.call("GET", f"/api/v1/jobs/{job['id']}/executions")
    assert status == 200
    assert [(r["status"], parse(r["scheduled_at"])) for r in runs] == [("completed", at)]


def clock_change(zone: str, year: int, month: int) -> date:
    """The day of `month` in `year` on which `zone` changes its clocks (found, not assumed)."""
    tz = ZoneInfo(zone)
    for day in range(2, 32):
        noon = datetime(year, month, day, 12, tzinfo=tz)
        if noon.utcoffset() != datetime(year, month, day - 1, 12, tzinfo=tz).utcoffset():
            return noon.date()
    raise AssertionError(f"{zone} does not change clocks in {year}-{month:02}")


# Next year's clock changes in New York, so the dates are always ahead.
SPRING = clock_change("America/New_York", datetime.now(UTC).year + 1, 3)
AUTUMN = clock_change("America/New_York", datetime.now(UTC).year + 1, 11)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # Spring forward at 02:00: 02:30 does not exist, so the run is at 03:00 EDT.
        (
            {"months": [3], "days_of_month": [SPRING.day], "time": "02:30"},
            datetime(SPRING.year, 3, SPRING.day, 7, 0, tzinfo=UTC),
        ),
        # Fall back at 02:00: 01:30 happens twice and runs once, the first time (EDT).
        (
            {"months": [11], "days_of_month": [AUTUMN.day], "time": "01:30"},
            datetime(AUTUMN.year, 11, AUTUMN.day, 5, 30, tzinfo=UTC),
        ),
        (
            f"FREQ=YEARLY;BYMONTH=3;BYMONTHDAY={SPRING.day};BYHOUR=2;BYMINUTE=30",
            datetime(SPRING.year, 3, SPRING.day, 7, 0, tzinfo=UTC),
        ),
    ],
)
async def test_calendar_jobs_follow_daylight_saving_rules(api: Api, rule: Any, expected: datetime) -> None:
    job = await nexus_create(
        api, job_type="calendar", cron_expression=None, calendar_rule=rule, timezone="America/New_York"
    )
    if isinstance(rule, str):
        assert job["calendar_rule"] == rule
    else:
        assert {k: job["calendar_rule"][k] for k in rule} == rule
    status, got = await api.call("GET", f"/api/v1/jobs/{job['id']}")
    assert (status, parse(got["next_run_at"])) == (200, expected)


async def test_resume_does_not_fire_the_runs_missed_while_paused(
    dev_server: DevServer, api: Api, receiver: Receiver
) -> None:
    job = await nexus_webhook_job(api, receiver.url_for("/tick"), cron_expression="* * * * * *")
    await eventually(lambda: len(receiver.on("/tick")) >= 2, timeout=20, what="the job firing")
    status, _ = await api.call("POST", f"/api/v1/jobs/{job['id']}/pause")
    assert status == 200
    paused_at = datetime.now(UTC)
    await quiesced(dev_server, seconds=3)  # the ticker has passed three seconds of paused schedule
    before = len(receiver.on("/tick"))
    status, _ = await api.call("POST", f"/api/v1/jobs/{job['id']}/resume")
    assert status == 200
    resumed_at = datetime.now(UTC)
    await eventually(lambda: len(receiver.on("/tick")) >= before + 2, timeout=20, what="firing again")
    nominal = sorted(nominal_of(c.headers["webhook-id"]) for c in receiver.on("/tick"))
    missed_window = [t for t in nominal if paused_at + timedelta(seconds=1) < t < resumed_at - timedelta(seconds=1)]
    assert missed_window == [], "runs from the paused time were fired after resuming"
    assert len(nominal) == len(set(nominal))


async def test_openapi_describes_the_nexus_surface(dev_server: DevServer) -> None:
    async with aiohttp.ClientSession() as session, session.get(dev_server.base_url + "/openapi.json") as response:
        schema = await response.json()
    validate(schema)
    ops = {
        (m.upper(), p): op for p, item in schema["paths"].items() if p.startswith("/api/v1") for m, op in item.items()
    }
    assert set(ops) == {
        ("POST", "/api/v1/jobs"), ("GET", "/api/v1/jobs"), ("GET", "/api/v1/jobs/stats/overview"),
        ("GET", "/api/v1/jobs/{job_id}"), ("PUT", "/api/v1/jobs/{job_id}"), ("DELETE", "/api/v1/jobs/{job_id}"),
        ("POST", "/api/v1/jobs/{job_id}/execute"), ("POST", "/api/v1/jobs/{job_id}/pause"),
        ("POST", "/api/v1/jobs/{job_id}/resume"), ("GET", "/api/v1/jobs/{job_id}/executions"),
        ("POST", "/api/v1/cron/validate"), ("GET", "/api/v1/cron/presets"),
    }  # fmt: skip
    components = schema["components"]["schemas"]

    def body_schema(op: dict[str, Any], code: str) -> dict[str, Any]:
        ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
        return components[ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]

    for (method, path), op in ops.items():
        if path.startswith("/api/v1/cron"):
            assert op.get("security") in (None, []), path
            continue
        assert op["security"] == [{"BearerToken": []}], (method, path)
        assert body_schema(op, "422")["properties"]["detail"]["type"] == "array", (method, path)
        assert body_schema(op, "401")["properties"]["detail"]["type"] == "string", (method, path)
    assert "404" in ops[("GET", "/api/v1/jobs/{job_id}")]["responses"]


async def nexus_id(api: Api, job_uuid: str) -> int:
    status, page = await api.call("GET", "/api/v1/jobs/?limit=1000")
    assert status == 200, page
    return next(j["id"] for j in page if j["uuid"] == job_uuid)  # type: ignore[no-any-return]


async def test_a_put_of_retry_fields_changes_only_those_of_the_policy(api: Api, account_id: uuid.UUID) -> None:
    policy = {
        "max_attempts": 5,
        "backoff_seconds": 10.0,
        "backoff_type": "linear",
        "jitter": 0.3,
        "max_backoff_seconds": 600.0,
    }
    status, created = await api.call(
        "POST",
        "/api/jobs",
        json={"account_id": str(account_id), "name": "p", "schedule": "0 2 * * *", "type": 1, "retry_policy": policy},
    )
    assert status == 201, created
    number = await nexus_id(api, created["id"])
    expected = dict(policy)
    for change, effect in (
        ({"retry_delay": 20}, {"backoff_seconds": 20.0}),
        ({"max_retries": 2}, {"max_attempts": 3}),
        ({"retry_backoff": True}, {}),  # linear is a backoff: it stays linear
        ({"retry_backoff": False}, {"backoff_type": "fixed"}),
        ({"retry_backoff": True}, {"backoff_type": "exponential"}),
        ({"retry_delay": 900}, {"backoff_seconds": 900.0, "max_backoff_seconds": 900.0}),  # a cap below it rises
    ):
        status, body = await api.call("PUT", f"/api/v1/jobs/{number}", json=change)
        assert status == 200, body
        expected |= effect
        status, there = await api.call("GET", f"/api/jobs/{created['id']}")
        assert there["retry_policy"] == expected, change


async def test_concurrent_puts_of_different_fields_all_survive(api: Api) -> None:
    job = await nexus_create(api)
    path = f"/api/v1/jobs/{job['id']}"
    for i in range(10):
        pairs = (
            ({"retry_delay": 100 + i}, {"max_retries": i % 10}),
            ({"name": f"name {i}"}, {"retry_delay": 200 + i}),
            ({"description": f"d {i}"}, {"tags": [f"t{i}"]}),
        )
        first, second = pairs[i % 3]
        results = await asyncio.gather(api.call("PUT", path, json=first), api.call("PUT", path, json=second))
        assert [status for status, _ in results] == [200, 200], results
        _, got = await api.call("GET", path)
        for field, value in (first | second).items():
            assert got[field] == value, (i, field, got)


async def test_an_active_job_needs_something_to_run(api: Api, receiver: Receiver) -> None:
    status, body = await api.call(
        "POST", "/api/v1/jobs/", json=DOCUMENT_EXAMPLE | {"task_name": None, "task_kwargs": {}}
    )
    assert_422(status, body, "task_name")
    status, page = await api.call("GET", "/api/v1/jobs/")
    assert (status, page) == (200, [])

    paused = await nexus_create(api, task_name=None, task_kwargs={}, is_active=False)
    for method, suffix, body in (("POST", "/resume", None), ("PUT", "", {"is_active": True})):
        status, error = await api.call(method, f"/api/v1/jobs/{paused['id']}{suffix}", json=body)
        assert_422(status, error, "task_name")
    task_job = await nexus_create(api)
    status, error = await api.call("PUT", f"/api/v1/jobs/{task_job['id']}", json={"task_name": None, "task_kwargs": {}})
    assert_422(status, error, "task_name")
    status, got = await api.call("GET", f"/api/v1/jobs/{task_job['id']}")
    assert (got["task_name"], got["is_active"]) == ("tasks.generate_report", True)

    # With a webhook (given on the other surface) there is something to run.
    await add_webhook(api, paused["uuid"], receiver.url_for("/something"))
    status, body = await api.call("POST", f"/api/v1/jobs/{paused['id']}/resume")
    assert status == 200, body


async def test_a_create_retried_with_its_idempotency_key_is_one_job(api: Api) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = DOCUMENT_EXAMPLE | {"name": f"once {key['Idempotency-Key']}"}
    status, first = await api.call("POST", "/api/v1/jobs/", json=body, headers=key)
    assert status == 201, first
    status, again = await api.call("POST", "/api/v1/jobs/", json=body, headers=key)
    assert (status, again["uuid"], again["id"]) == (201, first["uuid"], first["id"]), again
    status, jobs = await api.call("GET", "/api/v1/jobs/?limit=1000")
    assert [j["uuid"] for j in jobs if j["name"] == body["name"]] == [first["uuid"]]

    status, error = await api.call("POST", "/api/v1/jobs/", json=body | {"priority": 1}, headers=key)
    assert status == 409 and isinstance(error["detail"], str), error
    for bad in ("x" * 256, "caf\u00e9"):
        status, error = await api.call("POST", "/api/v1/jobs/", json=body, headers={"Idempotency-Key": bad})
        assert_422(status, error, "Idempotency-Key")
