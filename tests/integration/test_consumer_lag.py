"""A dispatcher whose slots are all busy fetches nothing, yet its consumer's lag gauge follows the server: it is
what the alert on a growing lag reads, and the lag grows exactly then. Real NATS, the dispatcher in this process."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from services.dispatcher.consumer_config import ensure_dispatcher_consumer
from services.dispatcher.service import open_dispatcher
from shared.bus import prioritized
from shared.bus.executions import publish_requested
from shared.contracts.executions import ExecutionRequested, occurrence_requests
from shared.contracts.jobs import WebhookSpec
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.factories import NOW, job_state
from tests.integration.test_priority import bus, running
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.integration

WAITING = 10


def due_now(url: str) -> ExecutionRequested:
    """A request already due (no fire lead to hold it aside): it waits for a slot."""
    job = job_state(webhooks=[WebhookSpec(id=uuid.uuid4(), url=url, created_at=NOW, updated_at=NOW)])
    nominal = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    return occurrence_requests(job, job_version=1, nominal_time=nominal, occurred_at=nominal, next_run_at=None)[0]


async def test_a_dispatcher_with_every_slot_busy_still_reports_its_growing_lag(
    settings: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prioritized, "LAG_REPORT_SECONDS", 0.2)
    settings = settings.replaced(dispatcher_concurrency=1, dispatch_lookahead=0)
    names = Names(settings.namespace)

    def lag() -> float | None:
        return REGISTRY.get_sample_value("scheduler_consumer_pending", {"consumer": names.dispatcher_consumer})

    receiver.gates["/first"] = release = asyncio.Event()
    async with bus(settings) as js:
        await ensure_dispatcher_consumer(js, settings)
        async with open_dispatcher(settings) as dispatcher, running(dispatcher.run):
            await publish_requested(js, names, due_now(receiver.url_for("/first")))
            await eventually(lambda: receiver.calls, timeout=10, what="the first delivery to take the only slot")
            for i in range(WAITING):
                await publish_requested(js, names, due_now(receiver.url_for(f"/w{i}")))
            await eventually(lambda: lag() == WAITING, timeout=10, what=f"the gauge to show {WAITING} waiting")
            release.set()
            await eventually(lambda: len(receiver.calls) == 1 + WAITING, timeout=20, what="every delivery")
            await eventually(lambda: lag() == 0, timeout=10, what="the gauge back to 0")
