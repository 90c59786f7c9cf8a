"""Operators' commands against a running system (`scheduler events tail`, `scheduler status`), and how every command
that reaches a server refuses, in one line, to use servers that are not this system's."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest

from scheduler.embedded import free_port
from shared.contracts.subjects import PARTITIONS, Names
from shared.settings import Settings
from tests.e2e.harness import SCHEDULER, api_client, create_firing_job, in_process, run_cli
from tests.receiver import Receiver
from tests.waiting import eventually

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
        assert "None" not in history.stdout, history.stdout  # job events have no attempt to print
        each = ["JobCreated", "WebhookAdded", "JobResumed"]  # created paused, enabled once its webhook is on
        assert [line.split()[1] for line in lines] == each * 2
        assert f"job={other['job']['id']}" in lines[3]

        names = Names(settings.namespace)

        async def listed() -> dict[str, Any] | None:
            # Every lease holder is in the one point-in-time listing of the leases bucket (see `rendered` below).
            got = json.loads((await run_cli(settings, "status", "--json")).stdout)
            held = sum(len(p) for p in got["tickers"]["partitions"].values()) == PARTITIONS
            projectors = set(got["projectors"]) == {names.jobs_stream, names.executions_stream}
            return got if held and projectors and got["backfill_runner"] else None

        status = await eventually(listed, timeout=60, what="status listing every lease")
        assert status["streams"][names.executions_stream]["messages"] > 0
        assert names.dispatcher_consumer in status["consumers"]
        assert sum(len(p) for p in status["tickers"]["partitions"].values()) == PARTITIONS
        assert len(status["tickers"]["members"]) == 1 and status["ticker_heartbeat"]["age_seconds"] < 10
        assert set(status["projection"]) == {names.jobs_stream, names.executions_stream}
        assert set(status["projectors"]) == {names.jobs_stream, names.executions_stream}
        assert status["backfill_runner"] == status["projectors"][names.executions_stream]  # the one projector

        async def rendered() -> str | None:
            # A point-in-time read of the leases bucket (a listing through an ordered consumer), which a loaded box
            # has been seen to return empty once: read again rather than fail on one reading.
            text = (await run_cli(settings, "status")).stdout
            return text if "tickers (1 alive)" in text else None

        text = await eventually(rendered, timeout=60, what="status showing the one ticker")
        assert "position" in text and "writer nobody" not in text and "backfills: run by nobody" not in text, text
        for job in (created, other):
            status_code, _ = await api.call("PATCH", f"/api/jobs/{job['job']['id']}/disable")
            assert status_code == 200


# Every command that reaches a server, with the arguments it needs (events tail stops after one event, if it ran).
OPERATOR_COMMANDS = [
    ("status",),
    ("dlq", "list"),
    ("dlq", "redrive", "--since", "1970-01-01T00:00:00"),
    ("events", "tail", "--count", "1"),
    ("replay",),
    ("worker", "--app", "tests.e2e.worker_app:worker"),
]


def _bare_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh terminal: no NATS_URL, DATABASE_URL or SCHEDULER_* exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_", "NATS_", "DATABASE_"))}
    return env | extra


async def _refused(args: tuple[str, ...], env: dict[str, str], cwd: Path | None = None) -> str:
    """Run a command that must fail; returns its one line of error, after checking there is nothing more."""
    result = await asyncio.to_thread(
        subprocess.run, [SCHEDULER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1, (args, result.stdout, result.stderr[-3000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), (args, result.stderr[-3000:])
    return lines[0]


@pytest.mark.parametrize("args", OPERATOR_COMMANDS, ids=lambda a: " ".join(a[:2]))
async def test_without_a_running_dev_or_urls_a_command_says_so_in_one_line(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    # No variables and no dev: never the defaults 127.0.0.1:4222 and :5432, which may be other servers.
    line = await _refused(args, _bare_env(), cwd=tmp_path)
    assert "no scheduler dev is running on" in line and ".scheduler" in line, line
    # A dev.json left by a dev that was killed: its pid is gone.
    data = tmp_path / "elsewhere"
    data.mkdir()
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    (data / "dev.json").write_text(
        json.dumps({"pid": dead.pid, "api_url": "http://127.0.0.1:1", "nats_url": "nats://127.0.0.1:1",
                    "database_url": "postgresql://postgres@127.0.0.1:1/x", "namespace": "scheduler"})
    )  # fmt: skip
    line = await _refused((*args, "--data-dir", str(data)), _bare_env())
    assert f"scheduler dev is not running on {data}" in line and f"pid {dead.pid}" in line, line


@pytest.mark.parametrize("args", OPERATOR_COMMANDS, ids=lambda a: " ".join(a[:2]))
async def test_a_command_pointed_at_servers_that_are_not_this_systems_says_so_in_one_line(
    args: tuple[str, ...], settings: Settings, tmp_path: Path
) -> None:
    # The test servers, under a namespace with no streams and in a database with no tables: someone else's.
    env = _bare_env(NATS_URL=settings.nats_url, DATABASE_URL=settings.database_url,
                    SCHEDULER_NAMESPACE=settings.namespace)  # fmt: skip
    line = await _refused(args, env)
    assert "not this system's" in line, line
    if args[:2] != ("dlq", "list"):  # the one command that needs no NATS
        line = await _refused(args, env | {"NATS_URL": f"nats://127.0.0.1:{free_port()}"})
        assert "cannot reach NATS at nats://127.0.0.1:" in line, line
    # Nothing was created on the foreign servers.
    nc = await nats.connect(settings.nats_url)
    try:
        streams = [info.config.name or "" for info in await nc.jetstream().streams_info()]
    finally:
        await nc.close()
    assert not [name for name in streams if settings.namespace in name.lower()], streams
    conn = await asyncpg.connect(settings.database_url)
    try:
        created = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
    finally:
        await conn.close()
    assert created == [], created
