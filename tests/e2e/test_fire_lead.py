"""Occurrences published ahead of their fire time: delivered at the instant, never before, and withdrawn when the
job is paused inside the lead."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.bus.withdrawals import WITHDRAWN_REASON
from shared.settings import Settings
from tests.e2e.harness import api_client, create_firing_job, in_process, scheduled_at
from tests.e2e.test_api_webhooks_and_executions import executions
from tests.e2e.test_nexus_api import nominal_of
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Wide, so that several occurrences of a job firing every second are published ahead at any moment.
LEAD = 3.0


async def test_published_ahead_delivered_at_the_instant_and_withdrawn_on_pause(
    settings: Settings, auth_headers: dict[str, str], account_id: uuid.UUID, receiver: Receiver
) -> None:
    settings = settings.replaced(fire_lead_seconds=LEAD)
    async with in_process(settings), api_client(settings.api_port, auth_headers) as api:
        created = await create_firing_job(api, account_id, receiver.url)
        job_id = created["job"]["id"]
        await eventually(lambda: len(receiver.calls) >= 3, timeout=30, what="three deliveries")

        # Each left at its instant, not up to LEAD before it.
        for call in receiver.calls:
            assert call.at >= nominal_of(call.headers["webhook-id"]).timestamp()

        # ... although it was requested well ahead (the lead is in effect).
        async def requested_ahead() -> list[dict[str, Any]] | None:
            # Read until the projector shows one: a request it has not reached yet is no evidence either way.
            page = await executions(api, job_id, "?limit=1000")
            return [e for e in page["items"] if e["status"] == "queued" and scheduled_at(e) > datetime.now(UTC)] or None

        ahead = await eventually(requested_ahead, timeout=20, what="occurrences due within the lead already requested")

        status, _ = await api.call("PATCH", f"/api/jobs/{job_id}/disable")
        assert status == 200
        paused_at = datetime.now(UTC)

        async def withdrawn() -> list[dict[str, object]] | None:
            items = (await executions(api, job_id, "?status=skipped&limit=1000"))["items"]
            return items if len(items) >= len(ahead) - 1 and items else None

        skipped = await eventually(withdrawn, timeout=20, what="the executions published ahead withdrawn")
        assert all(e["error"] == WITHDRAWN_REASON for e in skipped)
        late = [c for c in receiver.calls if nominal_of(c.headers["webhook-id"]) > paused_at + timedelta(seconds=0.5)]
        assert not late, "nothing due after the pause was delivered"
        assert not {c.headers["webhook-id"] for c in receiver.calls} & {e["occurrence_id"] for e in skipped}
