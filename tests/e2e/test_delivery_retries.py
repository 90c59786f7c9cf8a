"""Retries, timeouts, dead letters, re-drives and what receivers' answers mean, against `scheduler dev`."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import DevServer, token_for
from tests.e2e.harness import SCHEDULER, Api
from tests.e2e.test_api_webhooks_and_executions import add_webhook, executions
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def once_soon(seconds: int = 3) -> str:
    """A six-field cron that fires at one second a few seconds from now (and next a day later)."""
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    return f"{at.second} {at.minute} {at.hour} * * *"


async def create_job(api: Api, account_id: uuid.UUID, schedule: str, **fields: Any) -> dict[str, Any]:
    body = {"account_id": str(account_id), "name": "delivery", "schedule": schedule, "type": 1} | fields
    status, job = await api.call("POST", "/api/jobs", json=body)
    assert status == 201, job
    return job  # type: ignore[no-any-return]


async def attempts_of(
    api: Api, job_id: str, count: int, *, final: tuple[str, ...] = ("success", "dead_letter")
) -> list[dict[str, Any]]:
    """Wait until the job has `count` executions and the newest has finished for good; oldest first."""

    async def done() -> list[dict[str, Any]] | None:
        items = (await executions(api, job_id, "?limit=100"))["items"]
        if len(items) >= count and items[0]["status"] in final:
            return list(reversed(items))
        return None

    return await eventually(done, timeout=40, what=f"{count} attempts of job {job_id}")  # type: ignore[no-any-return]


@pytest.mark.parametrize(("backoff", "gaps"), [("exponential", [1, 2, 4]), ("linear", [1, 2, 3]), ("fixed", [1, 1, 1])])
async def test_retries_follow_the_backoff_then_dead_letter(
    api: Api, account_id: uuid.UUID, receiver: Receiver, backoff: str, gaps: list[float]
) -> None:
    receiver.statuses["/fail"] = 500
    policy = {"max_attempts": 4, "backoff_seconds": 1, "backoff_type": backoff}
    job = await create_job(
        api,
        account_id,
        once_soon(),
        retry_policy=policy,
        webhooks=[{"url": receiver.url_for("/fail")}],
    )
    assert job["retry_policy"] == policy | {"jitter": 0.0, "max_backoff_seconds": 3600.0}
    runs = await attempts_of(api, job["id"], 4)
    assert [(r["attempt"], r["status"]) for r in runs] == [
        (1, "failure"),
        (2, "failure"),
        (3, "failure"),
        (4, "dead_letter"),
    ]
    assert len({r["occurrence_id"] for r in runs}) == 1
    calls = receiver.on("/fail")
    assert len(calls) == 4
    assert len({c.headers["webhook-id"] for c in calls}) == 1, "every attempt carries the occurrence's id"
    measured = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(gap - 0.05 <= got <= gap + 0.75 for gap, got in zip(gaps, measured, strict=True)), measured
    assert all(r["retry_at"] is not None for r in runs[:3]) and runs[3]["dead_lettered_at"] is not None


async def test_a_dead_letter_is_listed_and_re_driven_with_the_same_webhook_id(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.statuses["/flaky"] = 503
    job = await create_job(
        api,
        account_id,
        once_soon(),
        retry_policy={"max_attempts": 2, "backoff_seconds": 0.5, "backoff_type": "fixed"},
        webhooks=[{"url": receiver.url_for("/flaky")}],
    )
    runs = await attempts_of(api, job["id"], 2)
    dead = runs[-1]
    assert dead["status"] == "dead_letter"
    status, page = await api.call("GET", f"/api/dead-letters?job_id={job['id']}")
    assert status == 200, page
    assert [d["id"] for d in page["items"]] == [dead["id"]] and page["total"] == 1

    receiver.statuses["/flaky"] = 200
    status, result = await api.call("POST", "/api/dead-letters/redrive", json={"execution_ids": [dead["id"]]})
    assert status == 202, result
    assert [r["execution_id"] for r in result["redriven"]] == [dead["id"]] and result["skipped"] == []
    runs = await attempts_of(api, job["id"], 3)
    assert [(r["attempt"], r["status"]) for r in runs] == [(1, "failure"), (2, "failure"), (3, "success")]
    assert runs[2]["id"] == result["redriven"][0]["new_execution_id"]
    ids = {c.headers["webhook-id"] for c in receiver.on("/flaky")}
    assert len(receiver.on("/flaky")) == 3 and len(ids) == 1
    status, page = await api.call("GET", f"/api/dead-letters?job_id={job['id']}")
    assert (status, page["total"]) == (200, 0)


async def test_redrive_needs_a_selection_and_stays_in_the_callers_accounts(api: Api, account_id: uuid.UUID) -> None:
    status, body = await api.call("POST", "/api/dead-letters/redrive", json={})
    assert (status, body["error_code"]) == (400, "VALIDATION_ERROR"), body
    status, body = await api.call("POST", "/api/dead-letters/redrive", json={"job_id": str(uuid.uuid4()), "x": 1})
    assert status == 400, body
    other = uuid.uuid4()
    status, body = await api.call("GET", f"/api/dead-letters?account_id={other}")
    assert (status, body["error_code"]) == (403, "FORBIDDEN"), body


async def test_redrive_says_per_id_what_happened_and_refuses_other_accounts(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.statuses["/once"] = 500
    job = await create_job(
        api,
        account_id,
        once_soon(),
        retry_policy={"max_attempts": 1},
        webhooks=[{"url": receiver.url_for("/once")}],
    )
    (dead,) = await attempts_of(api, job["id"], 1)
    unknown = str(uuid.uuid4())
    theirs = Api(api.session, dev_server.base_url, {"Authorization": f"Bearer {token_for(uuid.uuid4())}"})

    # Another account's job, dead letter or account: 403, as everywhere else, and nothing is re-driven.
    for body in (
        {"job_id": job["id"]},
        {"execution_ids": [dead["id"]]},
        {"account_id": str(account_id), "since": "2020-01-01T00:00:00Z"},
    ):
        status, error = await theirs.call("POST", "/api/dead-letters/redrive", json=body)
        assert (status, error["error_code"]) == (403, "FORBIDDEN"), (body, error)
    status, page = await api.call("GET", f"/api/dead-letters?job_id={job['id']}")
    assert (status, page["total"]) == (200, 1)

    receiver.statuses["/once"] = 200
    status, result = await api.call("POST", "/api/dead-letters/redrive", json={"execution_ids": [dead["id"], unknown]})
    assert status == 202, result
    assert [r["execution_id"] for r in result["redriven"]] == [dead["id"]]
    assert result["skipped"] == [{"execution_id": unknown, "reason": "not found"}], result
    # Once re-driven, it is no longer a dead letter: a second re-drive says so instead of answering nothing.
    status, again = await api.call("POST", "/api/dead-letters/redrive", json={"execution_ids": [dead["id"]]})
    assert status == 202, again
    assert again["redriven"] == [] and [s["execution_id"] for s in again["skipped"]] == [dead["id"]], again
    assert again["skipped"][0]["reason"] == "already re-driven", again
    await attempts_of(api, job["id"], 2)
    assert len(receiver.on("/once")) == 2


async def test_a_timeout_is_timed_out_then_retried(api: Api, account_id: uuid.UUID, receiver: Receiver) -> None:
    receiver.gates["/slow"] = asyncio.Event()  # never answers
    job = await create_job(
        api,
        account_id,
        once_soon(),
        timeout_seconds=1,
        retry_policy={"max_attempts": 2, "backoff_seconds": 0.5, "backoff_type": "fixed"},
        webhooks=[{"url": receiver.url_for("/slow")}],
    )
    assert job["timeout_seconds"] == 1
    status, read = await api.call("GET", f"/api/jobs/{job['id']}")
    assert (status, read["timeout_seconds"], read["retry_policy"]["max_attempts"]) == (200, 1, 2), read
    runs = await attempts_of(api, job["id"], 2)
    receiver.gates["/slow"].set()
    assert [(r["attempt"], r["status"]) for r in runs] == [(1, "timed_out"), (2, "dead_letter")]
    assert "no response within 1 s" in runs[0]["error"]
    assert 900 <= runs[0]["duration_ms"] < 3000


async def test_a_timeout_above_the_operators_bound_is_refused(api: Api, account_id: uuid.UUID) -> None:
    body = {"account_id": str(account_id), "name": "t", "schedule": "* * * * *", "type": 1, "timeout_seconds": 60}
    status, error = await api.call("POST", "/api/jobs", json=body)
    assert (status, error["error_code"]) == (400, "VALIDATION_ERROR"), error
    assert "timeout_seconds" in error["detail"]


async def test_retry_after_is_honoured(api: Api, account_id: uuid.UUID, receiver: Receiver) -> None:
    receiver.scripts["/busy"] = [(429, {"Retry-After": "2"})]
    job = await create_job(
        api,
        account_id,
        once_soon(),
        retry_policy={"max_attempts": 3, "backoff_seconds": 0.1, "backoff_type": "fixed"},
        webhooks=[{"url": receiver.url_for("/busy")}],
    )
    runs = await attempts_of(api, job["id"], 2)
    assert [(r["attempt"], r["status"], r["response_code"]) for r in runs] == [(1, "failure", 429), (2, "success", 200)]
    first, second = receiver.on("/busy")
    assert 2.0 - 0.05 <= second.at - first.at <= 2.75


async def test_a_redirect_is_a_failure_and_is_not_followed(api: Api, account_id: uuid.UUID, receiver: Receiver) -> None:
    receiver.scripts["/moved"] = [(302, {"Location": receiver.url_for("/landing")})]
    job = await create_job(
        api,
        account_id,
        once_soon(),
        retry_policy={"max_attempts": 1},
        webhooks=[{"url": receiver.url_for("/moved")}],
    )
    (run,) = await attempts_of(api, job["id"], 1)
    assert (run["status"], run["response_code"]) == ("dead_letter", 302)
    assert receiver.on("/landing") == []


async def test_410_disables_the_webhook_until_it_is_enabled_again(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.scripts["/gone"] = [(410, {})]
    job = await create_job(api, account_id, "* * * * * *", retry_policy={"max_attempts": 5, "backoff_seconds": 0.2})
    hook = await add_webhook(api, job["id"], receiver.url_for("/gone"))

    async def disabled() -> dict[str, Any] | None:
        status, got = await api.call("GET", f"/webhooks/{hook['id']}")
        assert status == 200
        return got if not got["enabled"] else None

    got = await eventually(disabled, timeout=20, what="the webhook to be disabled")
    assert "410" in got["disabled_reason"]

    async def dead_lettered() -> list[dict[str, Any]] | None:
        # The dead letter is recorded after the webhook is disabled, and projected from the other stream.
        items: list[dict[str, Any]] = (await executions(api, job["id"], "?status=dead_letter"))["items"]
        return items or None

    runs = await eventually(dead_lettered, timeout=20, what="the 410 dead-lettered")
    assert [r["response_code"] for r in runs] == [410], "no retry after 410"
    calls = len(receiver.on("/gone"))

    async def untargeted() -> bool:
        items = (await executions(api, job["id"], "?status=skipped"))["items"]
        return sum("no enabled webhook" in (r["error"] or "") for r in items) >= 2

    # Two more occurrences fire and find nothing to call: they are recorded skipped, and the receiver hears nothing.
    await eventually(untargeted, timeout=20, what="two occurrences with the webhook disabled")
    assert len(receiver.on("/gone")) == calls == 1

    status, got = await api.call("PUT", f"/webhooks/{hook['id']}", json={"enabled": True})
    assert status == 200 and got["enabled"] and got["disabled_reason"] is None, got
    await eventually(lambda: len(receiver.on("/gone")) > calls, timeout=20, what="calls to resume")


async def test_a_large_response_is_stored_truncated(api: Api, account_id: uuid.UUID, receiver: Receiver) -> None:
    receiver.bodies["/big"] = b"x" * 200_000
    job = await create_job(api, account_id, once_soon(), webhooks=[{"url": receiver.url_for("/big")}])
    (run,) = await attempts_of(api, job["id"], 1)
    assert run["status"] == "success" and len(run["response_body"]) == 65536


def dlq_command(dev: DevServer, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_", "NATS_", "DATABASE_"))}
    env |= {"NATS_URL": dev.nats_url, "DATABASE_URL": dev.database_url, "SCHEDULER_NAMESPACE": dev.namespace}
    done = subprocess.run([SCHEDULER, "dlq", *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_operators_list_and_re_drive_dead_letters_from_the_cli(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.statuses["/cli"] = 500
    job = await create_job(
        api,
        account_id,
        once_soon(),
        retry_policy={"max_attempts": 1},
        webhooks=[{"url": receiver.url_for("/cli")}],
    )
    (dead,) = await attempts_of(api, job["id"], 1)
    listing = await asyncio.to_thread(dlq_command, dev_server, "list", "--job", job["id"])
    assert listing.startswith("1 dead letter(s)") and dead["id"] in listing, listing

    receiver.statuses["/cli"] = 200
    report = await asyncio.to_thread(dlq_command, dev_server, "redrive", "--job", job["id"])
    assert "1 re-driven, 0 skipped, 0 left" in report, report
    runs = await attempts_of(api, job["id"], 2)
    assert [(r["attempt"], r["status"]) for r in runs] == [(1, "failure"), (2, "success")]
    listing = await asyncio.to_thread(dlq_command, dev_server, "list", "--job", job["id"])
    assert listing.startswith("0 dead letter(s)"), listing
