"""Requests are signed per Standard Webhooks with the account's secret, verified here by the `standardwebhooks`
package, and a rotation keeps the old secret valid for its grace period."""

from __future__ import annotations

import uuid

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.e2e.harness import Api
from tests.e2e.test_api_webhooks_and_executions import add_webhook
from tests.e2e.test_delivery_retries import create_job
from tests.receiver import Call, Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def verifies(secret: str, call: Call) -> bool:
    try:
        Webhook(secret).verify(call.body, call.headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True


async def test_requests_are_signed_and_rotation_keeps_the_old_secret_for_its_grace(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    status, first = await api.call("GET", f"/api/signing-secret?account_id={account_id}")
    assert status == 200, first
    assert first["secret"].startswith("whsec_") and first["previous_secret"] is None
    job = await create_job(api, account_id, "* * * * * *")
    await add_webhook(api, job["id"], receiver.url_for("/signed"), body_template='{"job": "{{job_id}}"}')
    await eventually(lambda: receiver.on("/signed"), timeout=20, what="a signed delivery")
    call = receiver.on("/signed")[0]
    assert call.headers["webhook-id"].startswith(job["id"])
    assert verifies(first["secret"], call), str(call.headers)
    assert not verifies(first["secret"].replace(first["secret"][8], "A" if first["secret"][8] != "A" else "B"), call)

    status, rotated = await api.call(
        "POST", "/api/signing-secret/rotate", json={"account_id": str(account_id), "grace_seconds": 3600}
    )
    assert status == 200, rotated
    assert (rotated["previous_secret"], rotated["secret"] != first["secret"]) == (first["secret"], True)
    seen = len(receiver.calls)
    # Dispatchers re-read secrets every few seconds: wait for a request signed with the new one.
    await eventually(
        lambda: any(verifies(rotated["secret"], c) for c in receiver.calls[seen:]), timeout=20, what="the new secret"
    )
    both = next(c for c in receiver.calls[seen:] if verifies(rotated["secret"], c))
    assert verifies(first["secret"], both), "during the grace period the old secret verifies too"
    assert len(both.headers["webhook-signature"].split(" ")) == 2

    status, ended = await api.call(
        "POST", "/api/signing-secret/rotate", json={"account_id": str(account_id), "grace_seconds": 0}
    )
    assert status == 200 and ended["previous_secret"] is None, ended
    seen = len(receiver.calls)
    await eventually(
        lambda: any(verifies(ended["secret"], c) for c in receiver.calls[seen:]), timeout=20, what="the third secret"
    )
    last = next(c for c in receiver.calls[seen:] if verifies(ended["secret"], c))
    assert not verifies(rotated["secret"], last) and len(last.headers["webhook-signature"].split(" ")) == 1


async def test_signing_secrets_belong_to_their_account(api: Api) -> None:
    other = uuid.uuid4()
    status, body = await api.call("GET", f"/api/signing-secret?account_id={other}")
    assert (status, body["error_code"]) == (403, "FORBIDDEN")
    status, body = await api.call("POST", "/api/signing-secret/rotate", json={"account_id": str(other)})
    assert (status, body["error_code"]) == (403, "FORBIDDEN")
