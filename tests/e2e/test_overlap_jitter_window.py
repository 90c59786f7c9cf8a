"""Overlap policies, jitter and start/end windows against `scheduler dev`, with a receiver that holds its answers."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.schedule.firing import jitter_of
from tests.e2e.conftest import DevServer
from tests.e2e.harness import Api
from tests.e2e.test_api_jobs import assert_error
from tests.e2e.test_api_webhooks_and_executions import add_webhook, disable_and_settle, executions
from tests.e2e.test_delivery_retries import create_job
from tests.e2e.test_nexus_api import nominal_of
from tests.factories import job_state
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


async def skipped_runs(api: Api, job_id: str, at_least: int) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        items = (await executions(api, job_id, "?status=skipped&limit=1000"))["items"]
        return items if len(items) >= at_least else None

    return await eventually(enough, timeout=20, what=f"{at_least} skipped runs")  # type: ignore[no-any-return]


async def test_skip_leaves_out_occurrences_due_while_the_previous_one_runs(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.gates["/skip"] = gate = asyncio.Event()
    # With its webhook from the start: an occurrence due before it would be skipped for another reason.
    hooks = [{"url": receiver.url_for("/skip"), "method": "POST"}]
    job = await create_job(api, account_id, "* * * * * *", overlap_policy="skip", webhooks=hooks)
    assert job["overlap_policy"] == "skip"
    await eventually(lambda: receiver.on("/skip"), timeout=20, what="the first run")
    skipped = await skipped_runs(api, job["id"], 2)
    assert len(receiver.on("/skip")) == 1, "nothing else reached the receiver while the first run was held"
    gate.set()
    await eventually(lambda: len(receiver.on("/skip")) >= 2, timeout=20, what="a run after the first finished")
    page = await disable_and_settle(dev_server, api, job["id"])
    held = nominal_of(receiver.on("/skip")[0].headers["webhook-id"])
    assert all("overlap policy (skip)" in e["error"] for e in skipped)
    assert all(datetime.fromisoformat(e["scheduled_at"].replace("Z", "+00:00")) > held for e in skipped)
    delivered = {c.headers["webhook-id"] for c in receiver.on("/skip")}
    assert not delivered & {e["occurrence_id"] for e in page["items"] if e["status"] == "skipped"}


async def test_queue_one_holds_one_occurrence_until_the_previous_one_finishes(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.gates["/queue"] = gate = asyncio.Event()
    hooks = [{"url": receiver.url_for("/queue"), "method": "POST"}]
    job = await create_job(api, account_id, "* * * * * *", overlap_policy="queue_one", webhooks=hooks)
    await eventually(lambda: receiver.on("/queue"), timeout=20, what="the first run")
    skipped = await skipped_runs(api, job["id"], 2)
    assert len(receiver.on("/queue")) == 1
    released = time.time()
    gate.set()
    await eventually(lambda: len(receiver.on("/queue")) >= 2, timeout=20, what="the queued run")
    await disable_and_settle(dev_server, api, job["id"])
    first, second = receiver.on("/queue")[:2]
    assert second.at >= released, "the queued run started only after the first one finished"
    # The one that waited is the occurrence right after the first: later ones were skipped, not queued.
    assert nominal_of(second.headers["webhook-id"]) == nominal_of(first.headers["webhook-id"]) + timedelta(seconds=1)
    assert all("overlap policy (queue_one)" in e["error"] for e in skipped)


async def test_jitter_delays_each_occurrence_by_its_own_fixed_amount(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    job = await create_job(api, account_id, "* * * * * *", jitter_seconds=0.9)
    assert job["jitter_seconds"] == 0.9
    await add_webhook(api, job["id"], receiver.url_for("/jitter"))
    await eventually(lambda: len(receiver.on("/jitter")) >= 5, timeout=20, what="five jittered runs")
    await disable_and_settle(dev_server, api, job["id"])
    state = job_state(id=uuid.UUID(job["id"]), jitter_seconds=0.9)
    delays = []
    for call in receiver.on("/jitter"):
        nominal = nominal_of(call.headers["webhook-id"])
        expected = jitter_of(state, nominal).total_seconds()
        late = call.at - nominal.timestamp()
        assert expected - 0.05 <= late <= expected + 2, (nominal, expected, late)
        delays.append(expected)
    assert len({round(d, 3) for d in delays}) > 1, "each occurrence has its own delay"


async def test_a_job_fires_only_inside_its_start_and_end(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    start = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0)
    end = start + timedelta(seconds=3)
    job = await create_job(api, account_id, "* * * * * *", start_at=start.isoformat(), end_at=end.isoformat(),
                           webhooks=[{"url": receiver.url_for("/window")}])  # fmt: skip
    assert datetime.fromisoformat(job["next_run_at"].replace("Z", "+00:00")) == start

    async def ended() -> dict[str, Any] | None:
        status, got = await api.call("GET", f"/api/jobs/{job['id']}")
        assert status == 200
        return got if got["next_run_at"] is None and got["last_run_at"] is not None else None

    await eventually(ended, timeout=30, what="the window to close")
    # The last occurrence is requested a fire lead ahead: pausing before its instant would withdraw it.
    await eventually(lambda: len(receiver.on("/window")) >= 4, timeout=20, what="the last occurrence delivered")
    await disable_and_settle(dev_server, api, job["id"])
    fired = sorted(nominal_of(c.headers["webhook-id"]) for c in receiver.on("/window"))
    assert fired == [start + timedelta(seconds=i) for i in range(4)]


async def test_bad_windows_are_refused(api: Api, account_id: uuid.UUID) -> None:
    now = datetime.now(UTC)
    for fields, field in (
        (
            {"start_at": (now + timedelta(hours=2)).isoformat(), "end_at": (now + timedelta(hours=1)).isoformat()},
            "end_at",
        ),
        ({"end_at": (now - timedelta(hours=1)).isoformat()}, "end_at"),
        ({"start_at": "2027-01-01T00:00:00"}, "UTC offset"),
        ({"jitter_seconds": 3601}, "jitter_seconds"),
        ({"overlap_policy": "sometimes"}, "overlap_policy"),
    ):
        body = {"account_id": str(account_id), "name": "w", "schedule": "* * * * *", "type": 1} | fields
        status, error = await api.call("POST", "/api/jobs", json=body)
        assert_error(status, error, 400, "VALIDATION_ERROR")
        assert field in error["detail"], (fields, error)
