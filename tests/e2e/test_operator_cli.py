"""Operators' commands against a running system: `scheduler events tail` and `scheduler status`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.contracts.subjects import PARTITIONS, Names
from shared.settings import Settings
from tests.e2e.harness import api_client, create_firing_job, in_process, run_cli
from tests.receiver import Receiver

pytestmark = pytest.mark.e2e


async def test_events_tail_follows_filtered_events_and_status_shows_the_system(
    settings: Settings, receiver: Receiver, account_id: uuid.UUID, auth_headers: dict[str, str]
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    async with in_process(settings), api_client(settings.api_port, auth_headers) as api:
        created = await create_firing_job(api, account_id, receiver.url)
        other = await create_firing_job(api, account_id, receiver.url)
        job_id = created["job"]["id"]
        tail = await run_cli(
            settings, "events", "tail", "--job", job_id, "--type", "ExecutionSucceeded", "--count", "2", "--json"
        )
        events = [json.loads(line) for line in tail.stdout.splitlines()]
        assert [e["event_type"] for e in events] == ["ExecutionSucceeded"] * 2
        assert {e["job_id"] for e in events} == {job_id}, "another job's events leaked through the filter"

        history = await run_cli(
            settings, "events", "tail", "--stream", "jobs", "--account", str(account_id), "--since",
            before.strftime("%Y-%m-%dT%H:%M:%S"), "--count", "6",
        )  # fmt: skip
        lines = history.stdout.splitlines()
        each = ["JobCreated", "WebhookAdded", "JobResumed"]  # created paused, enabled once its webhook is on
        assert [line.split()[1] for line in lines] == each * 2
        assert f"job={other['job']['id']}" in lines[3]

        status = json.loads((await run_cli(settings, "status", "--json")).stdout)
        names = Names(settings.namespace)
        assert status["streams"][names.executions_stream]["messages"] > 0
        assert names.dispatcher_consumer in status["consumers"]
        assert sum(len(p) for p in status["tickers"]["partitions"].values()) == PARTITIONS
        assert len(status["tickers"]["members"]) == 1 and status["ticker_heartbeat"]["age_seconds"] < 10
        assert set(status["projection"]) == {names.jobs_stream, names.executions_stream}
        assert set(status["projectors"]) == {names.jobs_stream, names.executions_stream}
        text = (await run_cli(settings, "status")).stdout
        assert "tickers (1 alive)" in text and "position" in text
        for job in (created, other):
            status_code, _ = await api.call("PATCH", f"/api/jobs/{job['job']['id']}/disable")
            assert status_code == 200
