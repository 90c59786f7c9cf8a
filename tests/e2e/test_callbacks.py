"""Result and failure callbacks against `scheduler dev`: set, shown, cleared and refused on the primary API; sent
signed after each attempt and each dead letter; retried while their receiver is down, and delivered once it is up."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg

from scheduler.embedded import free_port
from shared.contracts.callbacks import CallbackDelivered, CallbackFailed
from shared.contracts.codec import decode_execution_event
from tests.e2e.conftest import DevServer
from tests.e2e.harness import Api
from tests.e2e.test_api_jobs import assert_error
from tests.e2e.test_delivery_retries import create_job, once_soon
from tests.e2e.test_webhook_signing import verifies
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


async def test_callback_urls_are_set_shown_changed_and_cleared(api: Api, account_id: uuid.UUID) -> None:
    results, failures = "https://example.com/results", "https://example.com/failures"
    job = await create_job(api, account_id, "0 9 * * *", callback_url=results, failure_callback_url=failures)
    assert (job["callback_url"], job["failure_callback_url"]) == (results, failures)
    status, shown = await api.call("GET", f"/api/jobs/{job['id']}")
    assert status == 200 and (shown["callback_url"], shown["failure_callback_url"]) == (results, failures)

    status, changed = await api.call("PUT", f"/api/jobs/{job['id']}", json={"callback_url": None})
    assert status == 200, changed
    assert (changed["callback_url"], changed["failure_callback_url"]) == (None, failures)
    plain = await create_job(api, account_id, "0 9 * * *")
    assert (plain["callback_url"], plain["failure_callback_url"]) == (None, None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"callback_url": "ftp://example.com/x"}, "callback_url"),
        ({"failure_callback_url": "not a url"}, "failure_callback_url"),
        ({"callback_url": "http://169.254.169.254/latest/meta-data"}, "callback_url"),  # the egress guard
        ({"failure_callback_url": ""}, "failure_callback_url"),
    ],
)
async def test_bad_callback_urls_are_refused_naming_the_field(
    api: Api, account_id: uuid.UUID, fields: dict[str, Any], field: str
) -> None:
    body = {"account_id": str(account_id), "name": "x", "schedule": "0 9 * * *", "type": 1} | fields
    status, error = await api.call("POST", "/api/jobs", json=body)
    assert_error(status, error, 400, "VALIDATION_ERROR")
    assert field in json.dumps(error), error
    job = await create_job(api, account_id, "0 9 * * *")
    status, error = await api.call("PUT", f"/api/jobs/{job['id']}", json=fields)
    assert_error(status, error, 400, "VALIDATION_ERROR")
    status, shown = await api.call("GET", f"/api/jobs/{job['id']}")
    assert status == 200 and shown["callback_url"] is None and shown["failure_callback_url"] is None


async def test_a_callback_receiver_that_is_down_gets_every_callback_by_retry_once(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    callbacks = Receiver(port=free_port())  # down: nothing listens on its port until it is started below
    results, failures = callbacks.url_for("/results"), callbacks.url_for("/failures")
    tried: list[CallbackFailed] = []
    delivered: list[CallbackDelivered] = []

    async def seen(msg: Msg) -> None:
        event = decode_execution_event(msg.data)
        if isinstance(event, CallbackFailed):
            tried.append(event)
        elif isinstance(event, CallbackDelivered):
            delivered.append(event)

    nc = await nats.connect(dev_server.nats_url)
    try:
        await nc.subscribe(f"{dev_server.namespace}.executions.callback_failed.{account_id}.*", cb=seen)
        await nc.subscribe(f"{dev_server.namespace}.executions.callback_delivered.{account_id}.*", cb=seen)
        # Job a: its first attempt fails and its retry succeeds (two result callbacks). Job b: its only attempt
        # fails, so it is dead-lettered (a result callback and a failure callback).
        receiver.scripts["/a"] = [(500, {})]
        receiver.statuses["/b"] = 500
        retry = {"max_attempts": 2, "backoff_seconds": 1, "backoff_type": "fixed"}
        a = await create_job(api, account_id, once_soon(), retry_policy=retry, callback_url=results,
                             webhooks=[{"url": receiver.url_for("/a")}])  # fmt: skip
        b = await create_job(api, account_id, once_soon(), retry_policy=retry | {"max_attempts": 1},
                             callback_url=results, failure_callback_url=failures,
                             webhooks=[{"url": receiver.url_for("/b")}])  # fmt: skip

        def failed_twice() -> bool:
            tries = Counter((e.execution_id, e.kind) for e in tried)
            return len(tries) == 4 and all(n >= 2 for n in tries.values())

        await eventually(failed_twice, timeout=40, what="each of the four callbacks failing twice while down")
        assert all(e.retry_at is not None and not e.final for e in tried), "a try failed for good while retries remain"
        assert not callbacks.calls
        await callbacks.start()
        try:
            await eventually(lambda: len(delivered) >= 4, timeout=40, what="the four callbacks delivered")
            status, secret = await api.call("GET", f"/api/signing-secret?account_id={account_id}")
            assert status == 200, secret
            ids = Counter(c.headers["webhook-id"] for c in callbacks.calls)
            assert len(ids) == 4 and set(ids.values()) == {1}, f"each callback is delivered once: {ids}"
            assert all(verifies(secret["secret"], c) for c in callbacks.calls), "signed as deliveries are"
            bodies = [(c.path, c.headers["webhook-id"], json.loads(c.body)) for c in callbacks.calls]
        finally:
            await callbacks.stop()
    finally:
        await nc.close()

    of_a = sorted(
        (body["attempt"], body["status"], body["final"]) for _, _, body in bodies if body["job_id"] == a["id"]
    )
    assert of_a == [(1, "failure", False), (2, "success", True)], bodies
    retried = next(body for _, _, body in bodies if body["job_id"] == a["id"] and body["attempt"] == 1)
    assert retried["retry_at"] is not None and retried["response_code"] == 500
    of_b = sorted(
        (path, webhook_id.rsplit(".", 1)[1], body["kind"], body["status"])
        for path, webhook_id, body in bodies
        if body["job_id"] == b["id"]
    )
    assert of_b == [("/failures", "failure", "failure", "dead_letter"), ("/results", "callback", "result", "failure")]
    assert all(body["occurrence_id"].startswith(body["job_id"]) for _, _, body in bodies)
