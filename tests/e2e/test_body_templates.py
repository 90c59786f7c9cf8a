"""Body templates against `scheduler dev`: rendered per attempt, escaped, signed as sent, refused when broken."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.harness import Api
from tests.e2e.test_api_jobs import assert_error
from tests.e2e.test_api_webhooks_and_executions import add_webhook, executions
from tests.e2e.test_delivery_retries import create_job
from tests.e2e.test_webhook_signing import verifies
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

TEMPLATE = (
    '{"job": "{{job_id}}", "name": "{{job_name}}", "account": "{{account_id}}", "webhook": "{{webhook_id}}",'
    ' "execution": "{{execution_id}}", "occurrence": "{{occurrence_id}}", "at": "{{nominal_time}}",'
    ' "attempt": {{attempt}}}'
)


async def test_a_template_renders_each_attempt_escaped_and_signed_as_sent(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    name = 'nightly "export" \\ <all>'
    job = await create_job(api, account_id, "* * * * * *", name=name)
    hook = await add_webhook(api, job["id"], receiver.url_for("/t"), body_template=TEMPLATE)
    await eventually(lambda: receiver.on("/t"), timeout=20, what="a templated delivery")
    status, _ = await api.call("PATCH", f"/api/jobs/{job['id']}/disable")
    assert status == 200
    call = receiver.on("/t")[0]
    body = json.loads(call.body)
    occurrence = call.headers["webhook-id"]

    async def recorded() -> dict[str, object] | None:
        items = (await executions(api, job["id"], "?limit=1000"))["items"]
        return next((e for e in items if e["occurrence_id"] == occurrence and e["status"] == "success"), None)

    execution = await eventually(recorded, timeout=20, what="the templated execution")
    assert body == {
        "job": job["id"],
        "name": name,
        "account": str(account_id),
        "webhook": hook["id"],
        "execution": execution["id"],
        "occurrence": occurrence,
        "at": str(execution["scheduled_at"]),
        "attempt": 1,
    }
    status, secret = await api.call("GET", f"/api/signing-secret?account_id={account_id}")
    assert status == 200
    assert verifies(secret["secret"], call), "the signature covers the rendered body"


async def test_a_template_that_cannot_render_is_refused_when_saved(api: Api, account_id: uuid.UUID) -> None:
    job = await create_job(api, account_id, "0 2 * * *")
    for template in ("{{no_such_variable}}", "{{> partial}}", '{"a": "{{#job_id}}x{{/job_name}}"}'):
        status, error = await api.call(
            "POST",
            "/webhooks",
            json={"job_id": job["id"], "url": "http://127.0.0.1:9/h", "method": "POST", "body_template": template},
        )
        assert_error(status, error, 400, "VALIDATION_ERROR")
        assert "body_template does not render" in error["detail"], error
    hook = await add_webhook(api, job["id"], "http://127.0.0.1:9/h", body_template="{{job_id}}")
    status, error = await api.call("PUT", f"/webhooks/{hook['id']}", json={"body_template": "{{job}}"})
    assert_error(status, error, 400, "VALIDATION_ERROR")
    status, got = await api.call("GET", f"/webhooks/{hook['id']}")
    assert (status, got["body_template"]) == (200, "{{job_id}}")
