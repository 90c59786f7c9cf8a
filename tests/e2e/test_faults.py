"""Fault scenarios (issue 7): each injects one fault into a running system and checks it loses and doubles nothing.

The oracle: from a job's schedule, every occurrence between its first and its last recorded one must be recorded
exactly once (and delivered, by `webhook-id`), whatever was injected in between.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats as nats_client
import pytest
from aiohttp import web

from scheduler.embedded import EmbeddedNats
from services.api.core.auth import mint_token
from services.projector.replay import replay
from services.ticker import partitions
from shared.bus.job_store import NatsJobEventStore
from shared.contracts.jobs import JobUpdated
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.conftest import JWT_SECRET
from tests.e2e.harness import (
    Api,
    api_client,
    create_firing_job,
    running,
    scheduled_at,
    service_env,
    start_process,
    stop_process,
)
from tests.e2e.test_api_webhooks_and_executions import add_webhook, executions
from tests.e2e.test_nexus_api import nominal_of
from tests.e2e.test_replay import caught_up, content_hash
from tests.factories import job_created, job_state
from tests.faults import SteppedClock, paused, postgres_pid, restart_postgres
from tests.receiver import Receiver
from tests.tickers import running_ticker
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Figures for docs/reliability.md, printed once the scenarios ran (`uv run pytest -s tests/e2e/test_faults.py`).
FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def report_figures() -> Iterator[None]:
    yield
    for scenario, figures in FIGURES.items():
        print(f"\nFIGURES {scenario}: {json.dumps(figures)}")


async def settled_history(api: Api, job_id: str, receiver: Receiver, path: str) -> list[dict[str, Any]]:
    """Once every execution of the job has finished and every delivery is recorded: the executions."""

    async def settled() -> list[dict[str, Any]] | None:
        items = (await executions(api, job_id, "?limit=1000"))["items"]
        delivered = {c.headers["webhook-id"] for c in receiver.on(path)}
        # skipped: published ahead of its time and withdrawn when the job was disabled.
        final = ("success", "failure", "dead_letter", "missed", "timed_out", "skipped")
        finished = all(e["status"] in final for e in items)
        return items if finished and delivered <= {e["occurrence_id"] for e in items} else None

    return await eventually(settled, timeout=60, what=f"the history of {path}")  # type: ignore[no-any-return]


def check_every_second(
    items: list[dict[str, Any]],
    receiver: Receiver,
    path: str,
    in_flight: tuple[datetime, datetime] | None = None,
) -> dict[str, int]:
    """Nothing lost, nothing recorded twice, nothing delivered twice (every-second jobs) except, at-least-once,
    deliveries in flight at a fault (nominal times in `in_flight`). Returns the counts."""
    recorded = sorted(scheduled_at(e) for e in items)
    assert len(recorded) == len(set(recorded)), f"{path}: an occurrence recorded twice"
    span = int((recorded[-1] - recorded[0]).total_seconds())
    assert recorded == [recorded[0] + timedelta(seconds=s) for s in range(span + 1)], f"{path}: occurrences lost"
    calls = [c.headers["webhook-id"] for c in receiver.on(path)]
    twice = {nominal_of(c) for c in calls if calls.count(c) > 1}
    allowed = in_flight or (datetime.max.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    assert all(allowed[0] <= t <= allowed[1] for t in twice), f"{path}: delivered twice outside the fault: {twice}"
    return {"occurrences": len(recorded), "lost": 0, "duplicated": len(calls) - len(set(calls))}


async def disable(api: Api, job_id: str) -> None:
    status, _ = await api.call("PATCH", f"/api/jobs/{job_id}/disable")
    assert status == 200


async def firing(api: Api, account_id: uuid.UUID, receiver: Receiver, path: str) -> str:
    """An every-second job to `path`, once its first two calls have come; its id."""
    created = await create_firing_job(api, account_id, receiver.url_for(path))
    # A cluster's replicated streams can take a while to start on a loaded box: this is the system coming up.
    await eventually(lambda: len(receiver.on(path)) >= 2, timeout=60, what=f"{path} firing")
    return str(created["job"]["id"])


async def test_postgres_paused_for_20_seconds(
    settings: Settings, servers_dir: Path, receiver: Receiver, account_id: uuid.UUID, auth_headers: dict[str, str]
) -> None:
    """The api answers 503 quickly (no hang, no 500), delivery goes on, and the projector catches up after."""
    async with (
        running(settings, ["api", "projector", "ticker", "dispatcher"]),
        api_client(settings.api_port, auth_headers) as api,
    ):
        job_id = await firing(api, account_id, receiver, "/pg")
        answers: list[tuple[int, float]] = []
        with paused(postgres_pid(servers_dir)):
            paused_at = time.monotonic()
            while time.monotonic() - paused_at < 20:
                started = time.monotonic()
                status, body = await api.call("GET", f"/api/jobs/{job_id}")
                answers.append((status, time.monotonic() - started))
                assert status == 503 and body["error_code"] == "DATABASE_ERROR", (status, body)
            delivered_while_paused = len(receiver.on("/pg"))
        resumed = time.monotonic()
        assert max(seconds for _, seconds in answers) < 8, answers
        assert delivered_while_paused >= 15, "deliveries stopped while only Postgres was paused"
        await eventually(lambda: len(receiver.on("/pg")) > delivered_while_paused + 2, timeout=20, what="firing after")
        await disable(api, job_id)
        items = await settled_history(api, job_id, receiver, "/pg")
        FIGURES["postgres paused 20 s"] = check_every_second(items, receiver, "/pg") | {
            "slowest_answer_s": round(max(s for _, s in answers), 2),
            "caught_up_s": round(time.monotonic() - resumed, 1),
        }


async def test_postgres_restarted_under_load(
    settings: Settings, servers_dir: Path, receiver: Receiver, account_id: uuid.UUID, auth_headers: dict[str, str]
) -> None:
    """A real restart (every connection dropped): the projector and the api reconnect by themselves, delivery goes
    on, nothing is lost, and commands afterwards return as soon as their write is projected (the api listens for the
    projector's notifications again at once, not once a command has waited its bound)."""
    bound = settings.read_your_writes_timeout_seconds
    async with (
        running(settings, ["api", "projector", "ticker", "dispatcher"]),
        api_client(settings.api_port, auth_headers) as api,
    ):
        job_id = await firing(api, account_id, receiver, "/pg-restart")
        restarted_at = time.monotonic()
        await asyncio.to_thread(restart_postgres, servers_dir)
        back = time.monotonic() - restarted_at

        async def answers() -> bool:
            status, _ = await api.call("GET", f"/api/jobs/{job_id}")
            return status == 200

        await eventually(answers, timeout=30, what="the api answering from the database again")
        answered = time.monotonic() - restarted_at
        # Commands after the restart: each returns once its write is projected, well within the bound.
        durations = []
        for n in range(4):  # jobs that never fire while the test runs: the every-second one is left alone
            began = time.monotonic()
            body = {"account_id": str(account_id), "name": f"after {n}", "schedule": "0 0 0 1 1 *", "type": 1}
            status, made = await api.call("POST", "/api/jobs", json=body)
            durations.append(time.monotonic() - began)
            assert status == 201 and made["name"] == f"after {n}", (status, made)
        assert max(durations) < bound / 2, f"commands waited for their bound ({bound} s): {durations}"
        delivered = len(receiver.on("/pg-restart"))
        await eventually(lambda: len(receiver.on("/pg-restart")) > delivered + 2, timeout=20, what="firing after")
        await disable(api, job_id)
        items = await settled_history(api, job_id, receiver, "/pg-restart")
        FIGURES["postgres restarted"] = check_every_second(items, receiver, "/pg-restart") | {
            "restart_s": round(back, 1),
            "api_answering_s": round(answered, 1),
            "slowest_command_after_s": round(max(durations), 2),
        }


async def test_clock_jumps_forward_and_back(
    settings: Settings, receiver: Receiver, account_id: uuid.UUID, auth_headers: dict[str, str]
) -> None:
    """Forward by 11 minutes, longer than the 10-minute duplicate window: the jump is a stretch nobody looked at,
    caught up as the misfire policy says (fire_all, 60 s) and exactly once, with no help from deduplication.
    Back: nothing fires twice; firing resumes when the clock is past the last occurrence again."""
    clock = SteppedClock()
    async with (
        running(settings, ["api", "projector", "dispatcher"]),
        running_ticker(settings, clock),
        api_client(settings.api_port, auth_headers) as api,
    ):
        created = await create_firing_job(api, account_id, receiver.url_for("/clock"))
        job_id = created["job"]["id"]
        await eventually(lambda: len(receiver.on("/clock")) >= 2, timeout=20, what="firing")
        before_jump = max(nominal_of(c.headers["webhook-id"]) for c in receiver.on("/clock"))
        clock.offset = timedelta(seconds=660)
        await eventually(
            lambda: any(nominal_of(c.headers["webhook-id"]) > before_jump + timedelta(seconds=661)
                        for c in receiver.on("/clock")),
            timeout=60, what="firing after the jump forward",
        )  # fmt: skip
        clock.offset = timedelta(seconds=655)  # five seconds back
        back_at = max(nominal_of(c.headers["webhook-id"]) for c in receiver.on("/clock"))
        await eventually(
            lambda: any(nominal_of(c.headers["webhook-id"]) > back_at for c in receiver.on("/clock")),
            timeout=20, what="firing again once the clock passed the last occurrence",
        )  # fmt: skip
        await disable(api, job_id)
        items = await settled_history(api, job_id, receiver, "/clock")
    counts = check_every_second(items, receiver, "/clock")
    missed = sorted(scheduled_at(e) for e in items if e["status"] == "missed")
    fired_late = [
        scheduled_at(e)
        for e in items
        if e["status"] == "success" and before_jump < scheduled_at(e) < before_jump + timedelta(seconds=658)
    ]
    assert 595 <= len(missed) <= 605, len(missed)  # older than the 60 s grace when the jump was seen
    assert 55 <= len(fired_late) <= 62, len(fired_late)  # the last minute of the jump, fired late
    assert all(m < min(fired_late) for m in missed)
    FIGURES["clock jumps"] = counts | {"missed": len(missed), "fired_late": len(fired_late)}


async def test_two_tickers_owning_the_same_partitions_record_nothing_twice(
    settings: Settings, receiver: Receiver, account_id: uuid.UUID, auth_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A lease race gone wrong: both tickers believe they own every partition and publish the same occurrences.
    JetStream drops the second publish of each (same message id), so every occurrence runs and is recorded once."""

    async def everything(self: partitions.PartitionLeases) -> partitions.Step:
        gained = frozenset(range(self.partitions)) - self.owned
        self.owned |= gained
        return partitions.Step(gained=gained)

    monkeypatch.setattr(partitions.PartitionLeases, "step", everything)
    first = settings.replaced(instance_id="ticker-1")
    second = settings.replaced(instance_id="ticker-2")
    async with (
        running(settings, ["api", "projector", "dispatcher"]),
        running_ticker(first, SteppedClock()) as one,
        running_ticker(second, SteppedClock()) as two,
        api_client(settings.api_port, auth_headers) as api,
    ):
        jobs = [
            (await create_firing_job(api, account_id, receiver.url_for(f"/twin{i}")))["job"]["id"] for i in range(3)
        ]
        for i in range(3):
            await eventually(lambda i=i: len(receiver.on(f"/twin{i}")) >= 5, timeout=30, what="firing")
        assert one.owned == two.owned == frozenset(range(32)), "both tickers fire every partition"
        for job_id in jobs:
            await disable(api, job_id)
        counts = [check_every_second(await settled_history(api, j, receiver, f"/twin{i}"), receiver, f"/twin{i}")
                  for i, j in enumerate(jobs)]  # fmt: skip
    FIGURES["two tickers on one partition"] = {
        "occurrences": sum(c["occurrences"] for c in counts),
        "duplicated": sum(c["duplicated"] for c in counts),
    }


@asynccontextmanager
async def hostile_receiver() -> AsyncIterator[str]:
    """Receivers that misbehave: slow, never answering, answering 20 MB, trickling a byte at a time."""
    release = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    async def never(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="never")

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"x" * 65536
        for _ in range(320):  # 20 MiB, if anyone reads it all
            await response.write(chunk)
        return response

    async def slowloris(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(600):
            await response.write(b"x")
            await asyncio.sleep(0.5)
        return response

    app = web.Application()
    for path, handler in (("/slow", slow), ("/never", never), ("/huge", huge), ("/slowloris", slowloris)):
        app.router.add_post(path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        release.set()
        await runner.cleanup()


async def test_hostile_receivers_cost_bounded_time_and_memory(
    settings: Settings, account_id: uuid.UUID, auth_headers: dict[str, str]
) -> None:
    """Each delivery ends by the job's timeout (2 s here) and keeps at most the body cap, whatever the receiver."""
    async with (
        hostile_receiver() as base,
        running(settings, ["api", "projector", "ticker", "dispatcher"]),
        api_client(settings.api_port, auth_headers) as api,
    ):
        jobs: dict[str, str] = {}
        for path in ("/slow", "/never", "/huge", "/slowloris"):
            body = {"account_id": str(account_id), "name": path, "schedule": "0 0 1 1 *", "type": 1,
                    "timeout_seconds": 2, "retry_policy": {"max_attempts": 1}}  # fmt: skip
            status, job = await api.call("POST", "/api/jobs", json=body)
            assert status == 201, job
            await add_webhook(api, job["id"], base + path)
            jobs[path] = job["id"]
        # A change saved after `at` would move the daily schedule to tomorrow: far enough ahead on a loaded box too.
        at = datetime.now(UTC) + timedelta(seconds=8)
        for job_id in jobs.values():
            status, _ = await api.call(
                "PUT", f"/api/jobs/{job_id}", json={"schedule": f"{at.second} {at.minute} {at.hour} * * *"}
            )
            assert status == 200
        assert datetime.now(UTC) < at - timedelta(seconds=1), "the schedules were changed too late"

        async def finished(job_id: str) -> dict[str, Any] | None:
            items = (await executions(api, job_id))["items"]
            return items[0] if items and items[0]["status"] in ("success", "dead_letter") else None

        outcomes = {
            path: await eventually(lambda j=job_id: finished(j), timeout=40, what=path) for path, job_id in jobs.items()
        }
    for path in ("/slow", "/never", "/slowloris"):
        assert outcomes[path]["status"] == "dead_letter" and "within 2 s" in outcomes[path]["error"], outcomes[path]
        assert outcomes[path]["duration_ms"] <= 3500, outcomes[path]
    huge = outcomes["/huge"]
    assert huge["status"] == "success" and len(huge["response_body"]) == settings.response_body_limit, len(
        huge["response_body"]
    )
    assert huge["duration_ms"] <= 3500
    FIGURES["hostile receivers"] = {
        path: {"status": o["status"], "ms": o["duration_ms"]} for path, o in outcomes.items()
    }


async def test_nats_killed_and_restarted_during_a_burst(
    settings: Settings, receiver: Receiver, account_id: uuid.UUID, auth_headers: dict[str, str], tmp_path: Path
) -> None:
    """Every acknowledged event survives a SIGKILL of nats-server, and the services carry on by themselves."""
    nats = EmbeddedNats(tmp_path / "nats").start()
    settings = settings.replaced(nats_url=nats.url)
    try:
        async with (
            running(settings, ["api", "projector", "ticker", "dispatcher"]),
            api_client(settings.api_port, auth_headers) as api,
        ):
            jobs = []
            for i in range(5):
                jobs.append((await create_firing_job(api, account_id, receiver.url_for(f"/burst{i}")))["job"]["id"])
            for i in range(5):
                await eventually(lambda i=i: len(receiver.on(f"/burst{i}")) >= 3, timeout=20, what="firing")
            before = await stream_ends(settings)
            assert nats.pid is not None
            os.kill(nats.pid, signal.SIGKILL)
            killed, killed_at = time.monotonic(), datetime.now(UTC)
            await asyncio.sleep(2)  # the outage itself
            nats = EmbeddedNats(tmp_path / "nats", port=nats.port).start()
            restarted = time.monotonic()
            after = await stream_ends(settings)
            assert all(after[s] >= before[s] for s in before), (before, after)  # nothing acknowledged was lost
            seen = {i: len(receiver.on(f"/burst{i}")) for i in range(5)}
            for i in range(5):
                await eventually(lambda i=i: len(receiver.on(f"/burst{i}")) > seen[i] + 1, timeout=30, what="back")
            recovered_in = time.monotonic() - restarted
            for job_id in jobs:
                await disable(api, job_id)
            window = (killed_at - timedelta(seconds=3), killed_at + timedelta(seconds=4))
            counts = [
                check_every_second(
                    await settled_history(api, j, receiver, f"/burst{i}"), receiver, f"/burst{i}", window
                )
                for i, j in enumerate(jobs)
            ]
    finally:
        nats.stop()
    FIGURES["nats killed mid-burst"] = {
        "occurrences": sum(c["occurrences"] for c in counts),
        "lost": 0,
        "duplicated": sum(c["duplicated"] for c in counts),
        "outage_s": round(restarted - killed, 1),
        "recovered_after_restart_s": round(recovered_in, 1),
    }


async def stream_ends(settings: Settings) -> dict[str, int]:
    names = Names(settings.namespace)
    nc = await nats_client.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        return {s: (await js.stream_info(s)).state.last_seq for s in (names.jobs_stream, names.executions_stream)}
    finally:
        await nc.close()


async def test_projector_killed_mid_batch_then_the_read_models_equal_a_full_replay(
    settings: Settings, receiver: Receiver, account_id: uuid.UUID, auth_headers: dict[str, str], tmp_path: Path
) -> None:
    """Baseline and projector crash: a job fires while a backlog of 30,000 events is projected; the projector is
    SIGKILLed mid-batch and started again. Nothing is lost or doubled, the positions equal the streams' ends, and
    the read models equal a replay from the start, table by table."""
    settings = settings.replaced(lease_ttl_seconds=2.0)
    env = service_env(settings) | {"SCHEDULER_LEASE_TTL_SECONDS": "2"}
    projector = start_process(["projector"], env, tmp_path / "projector-1.log")
    try:
        async with (
            running(settings, ["api", "ticker", "dispatcher"]),
            api_client(settings.api_port, auth_headers) as api,
        ):
            job_id = (await create_firing_job(api, account_id, receiver.url_for("/base")))["job"]["id"]
            await eventually(lambda: len(receiver.on("/base")) >= 2, timeout=20, what="firing")
            backlog = await paused_jobs_backlog(settings, 3_000)
            await eventually(lambda: applied_some(settings), timeout=30, what="the projector applying the backlog")
            projector.send_signal(signal.SIGKILL)
            projector.wait(10)
            projector = start_process(["projector"], env, tmp_path / "projector-2.log")
            await eventually(lambda: len(receiver.on("/base")) >= 8, timeout=30, what="firing on")
            await disable(api, job_id)
            items = await settled_history(api, job_id, receiver, "/base")
            counts = check_every_second(items, receiver, "/base")
            await caught_up(settings)
            live = await content_hash(settings.database_url)
    finally:
        assert stop_process(projector) == 0
    report = await replay(settings, keep_previous=True)
    assert await content_hash(settings.database_url) == live, "the live read models differ from a replay"
    FIGURES["projector killed mid-batch"] = counts | {
        "events_checked": report.events,
        "backlog_events": backlog,
        "replay_events_per_s": round(report.rate),
    }


async def paused_jobs_backlog(settings: Settings, jobs: int) -> int:
    """Job events that give the projector a backlog and nobody else work: paused jobs, created then renamed twice."""
    nc = await nats_client.connect(settings.nats_url)
    written = 0
    try:
        store = NatsJobEventStore(nc.jetstream(), Names(settings.namespace))
        for start in range(0, jobs, 250):
            batch = [job_created(job_state("* * * * * *", enabled=False)) for _ in range(min(250, jobs - start))]
            sequences = await asyncio.gather(*(store.append(e, 0) for e in batch))
            renamed = [
                JobUpdated(**{**msgspec.structs.asdict(e), "event_id": uuid.uuid4(), "version": 2,
                              "job": msgspec.structs.replace(e.job, name="renamed"), "changed": ("name",)})
                for e in batch
            ]  # fmt: skip
            await asyncio.gather(*(store.append(e, seq) for e, seq in zip(renamed, sequences, strict=True)))
            written += 2 * len(batch)
    finally:
        await nc.close()
    return written


async def applied_some(settings: Settings) -> bool:
    conn = await asyncpg.connect(settings.database_url)
    try:
        position = await conn.fetchval(
            "SELECT position FROM projector_positions WHERE stream = $1", Names(settings.namespace).jobs_stream
        )
    except asyncpg.UndefinedTableError:
        return False
    finally:
        await conn.close()
    return bool(position and position > 500)


async def test_failing_receivers_and_a_poison_job_do_not_hold_up_others(
    settings: Settings, receiver: Receiver, account_id: uuid.UUID, auth_headers: dict[str, str]
) -> None:
    """500s retry by policy then dead-letter, 429 waits for its Retry-After, 410 disables the webhook, 302 is a
    failure that is not followed, a receiver that never answers times out: all while another account's every-second
    job is delivered on time."""
    receiver.statuses.update({"/e500": 500, "/e410": 410, "/e302": 302})
    receiver.scripts["/e429"] = [(429, {"Retry-After": "1"})]
    receiver.gates["/poison"] = asyncio.Event()
    other_account = uuid.uuid4()
    retry = {"max_attempts": 3, "backoff_seconds": 0.5, "backoff_type": "fixed"}
    async with (
        running(settings, ["api", "projector", "ticker", "dispatcher"]),
        api_client(settings.api_port, auth_headers) as api,
        api_client(settings.api_port, {"Authorization": f"Bearer {mint_token(JWT_SECRET, accounts=[other_account])}"})
        as other,
    ):  # fmt: skip
        healthy = (await create_firing_job(other, other_account, receiver.url_for("/healthy")))["job"]["id"]
        # Far enough ahead that every job is in the ticker's index before it is due, on a loaded box too.
        at = datetime.now(UTC) + timedelta(seconds=10)
        failing: dict[str, str] = {}
        for path in ("/e500", "/e429", "/e410", "/e302", "/poison"):
            body = {"account_id": str(account_id), "name": path, "type": 1, "retry_policy": retry,
                    "timeout_seconds": 2, "schedule": f"{at.second} {at.minute} {at.hour} * * *",
                    "webhooks": [{"url": receiver.url_for(path)}]}  # fmt: skip
            status, job = await api.call("POST", "/api/jobs", json=body)
            assert status == 201, job
            failing[path] = job["id"]
        assert datetime.now(UTC) < at - timedelta(seconds=1), "the jobs were made too late for the test to mean much"

        async def final(job_id: str) -> list[dict[str, Any]] | None:
            items = (await executions(api, job_id, "?limit=100"))["items"]
            return items if items and items[0]["status"] in ("success", "dead_letter") else None

        results = {}
        for path, job_id in failing.items():
            results[path] = await eventually(lambda j=job_id: final(j), timeout=60, what=path)
        await disable(other, healthy)
        receiver.gates["/poison"].set()
        history = await settled_history(other, healthy, receiver, "/healthy")
    counts = check_every_second(history, receiver, "/healthy")
    lateness = sorted(c.at - nominal_of(c.headers["webhook-id"]).timestamp() for c in receiver.on("/healthy"))
    assert lateness[int(len(lateness) * 0.99) - 1] < 1.0, lateness[-5:]  # on time, not held up by the others
    assert [e["status"] for e in reversed(results["/e500"])] == ["failure", "failure", "dead_letter"]
    assert results["/e429"][0]["status"] == "success" and len(results["/e429"]) == 2
    assert [e["status"] for e in results["/e410"]] == ["dead_letter"]
    assert results["/e302"][0]["response_code"] == 302 and len(receiver.on("/e302")) == 3
    assert results["/poison"][0]["status"] == "dead_letter" and "within 2 s" in results["/poison"][0]["error"]
    FIGURES["failing receivers"] = counts | {
        "healthy_p99_lateness_s": round(lateness[int(len(lateness) * 0.99) - 1], 3)
    }
