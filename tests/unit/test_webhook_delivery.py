"""A webhook the HTTP client cannot even send is a failed attempt with a reason, never an exception."""

from __future__ import annotations

import uuid

import pytest
from aiohttp.resolver import DefaultResolver

from services.dispatcher.webhook_delivery import deliver
from shared.contracts.executions import ExecutionRequested, execution_id, occurrence_id
from shared.contracts.jobs import WebhookSpec
from shared.delivery.http_client import HttpClient
from tests.factories import NOW

pytestmark = pytest.mark.unit


def request_to(url: str, headers: dict[str, str]) -> ExecutionRequested:
    job_id = uuid.uuid4()
    occ = occurrence_id(job_id, NOW)
    hook = WebhookSpec(id=uuid.uuid4(), url=url, headers=headers, created_at=NOW, updated_at=NOW)
    return ExecutionRequested(
        execution_id=execution_id(occ, hook.id, 1),
        occurrence_id=occ,
        job_id=job_id,
        account_id=uuid.uuid4(),
        occurred_at=NOW,
        nominal_time=NOW,
        job_version=1,
        job_name="n",
        webhook=hook,
        next_run_at=None,
    )


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("http://a..b/", {}),
        ("http://example.invalid/", {"X-Bell": "ding\x01"}),
        ("http://example.invalid/", {"X-Split": "a\r\nInjected: yes"}),
    ],
)
async def test_unsendable_requests_are_failures(url: str, headers: dict[str, str]) -> None:
    client = HttpClient(DefaultResolver())
    outcome = await deliver(client, request_to(url, headers), timeout=5, body_limit=1024)
    await client.close()
    assert outcome.error is not None
    assert outcome.response_code is None
    assert not outcome.timed_out
    assert outcome.unsendable, outcome.error
