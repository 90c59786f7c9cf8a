"""Faults of a three-server NATS cluster under load: every stream and bucket replicated three ways, jobs firing every
second, the services in this process connected with the three servers' list.

The oracle is the fault suite's (`test_faults.check_every_second`): every occurrence between a job's first and last
recorded one is recorded once and delivered; a delivery may be repeated only around the fault (in flight then,
with the same `webhook-id`). Each test prints its figures (`FIGURES ...`: the largest lateness of a delivery and
the time from the fault to the first delivery on time again), which `docs/reliability.md` quotes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest

from scheduler.embedded import EmbeddedNats, EmbeddedNatsCluster
from shared.bus.connection import servers
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.e2e.harness import Api, api_client, running
from tests.e2e.test_faults import check_every_second, disable, firing, settled_history
from tests.e2e.test_nexus_api import nominal_of
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

JOBS = 3
# A 503 slower than this came from a publish that timed out (one refused at once takes milliseconds).
AMBIGUOUS_AFTER_SECONDS = 2.0
# Late by less than this, a delivery counts as on time (the dispatcher's own lateness on this box is far below it).
ON_TIME_SECONDS = 1.0


@pytest.fixture
def whole_again(nats_cluster: EmbeddedNatsCluster) -> Iterator[list[EmbeddedNats]]:
    """Servers a test stopped, frozen or killed are running again after it, and the cluster healthy."""
    touched: list[EmbeddedNats] = []
    yield touched
    for server in touched:
        if server.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGCONT)
        if not server.running:
            server.start()
    nats_cluster.wait_healthy(nats_cluster.servers)


@dataclass(frozen=True)
class OnCluster:
    """A test's settings on the cluster, the cluster, the servers it touched (made whole after it), its receiver."""

    settings: Settings
    cluster: EmbeddedNatsCluster
    touched: list[EmbeddedNats]
    receiver: Receiver
    account_id: uuid.UUID
    auth_headers: dict[str, str]

    @asynccontextmanager
    async def firing(self) -> AsyncIterator[tuple[Api, list[str]]]:
        """The four services on the cluster and JOBS every-second jobs firing (paths /c0, /c1, ...)."""
        async with (
            running(self.settings, ["api", "projector", "ticker", "dispatcher"]),
            api_client(self.settings.api_port, self.auth_headers) as api,
        ):
            yield api, [await firing(api, self.account_id, self.receiver, f"/c{i}") for i in range(JOBS)]


@pytest.fixture
def on(
    cluster_settings: Settings,
    nats_cluster: EmbeddedNatsCluster,
    whole_again: list[EmbeddedNats],
    receiver: Receiver,
    account_id: uuid.UUID,
    auth_headers: dict[str, str],
) -> OnCluster:
    return OnCluster(cluster_settings, nats_cluster, whole_again, receiver, account_id, auth_headers)


async def leaders(settings: Settings) -> dict[str, str]:
    """The leader of each of this test's streams (and buckets), by stream name."""
    nc = await nats.connect(servers(settings.nats_url))
    try:
        js = nc.jetstream()
        namespace = settings.namespace.lower()
        return {
            s.config.name: s.cluster.leader
            for s in await js.streams_info()
            if namespace in s.config.name.lower() and s.cluster is not None and s.cluster.leader is not None
        }
    finally:
        await nc.close()


async def lead_nothing(settings: Settings, server: str) -> None:
    """Move the leadership of this test's streams and durable consumers away from `server` (leader step-downs,
    repeated until no group it leads is left)."""
    nc = await nats.connect(servers(settings.nats_url))
    try:
        js = nc.jetstream()
        namespace = settings.namespace.lower()

        async def groups_led() -> list[str]:
            subjects = []
            for stream in await js.streams_info():
                name = stream.config.name
                if namespace not in name.lower():
                    continue
                if stream.cluster is not None and stream.cluster.leader == server:
                    subjects.append(f"$JS.API.STREAM.LEADER.STEPDOWN.{name}")
                for consumer in await js.consumers_info(name):
                    if consumer.config.durable_name and consumer.cluster and consumer.cluster.leader == server:
                        subjects.append(f"$JS.API.CONSUMER.LEADER.STEPDOWN.{name}.{consumer.name}")
            return subjects

        async def led_nothing() -> bool:
            led = await groups_led()
            for subject in led:
                await nc.request(subject, b"", timeout=5)
            return not led

        await eventually(led_nothing, timeout=30, what=f"{server} leading nothing")
    finally:
        await nc.close()


def lateness(receiver: Receiver, paths: list[str], since: float) -> list[tuple[float, float]]:
    """(arrival, lateness) of every delivery to `paths` that arrived after `since` (epoch seconds), by arrival."""
    out = []
    for path in paths:
        for call in receiver.on(path):
            if call.at >= since:
                out.append((call.at, call.at - nominal_of(call.headers["webhook-id"]).timestamp()))
    return sorted(out)


async def settle_and_check(
    api: Api, jobs: list[str], receiver: Receiver, fault: tuple[datetime, datetime]
) -> dict[str, int]:
    """Disable the jobs, wait for their histories to settle, and apply the oracle to each."""
    for job_id in jobs:
        await disable(api, job_id)
    window = (fault[0] - timedelta(seconds=3), fault[1] + timedelta(seconds=5))
    counts = [
        check_every_second(await settled_history(api, j, receiver, f"/c{i}"), receiver, f"/c{i}", window)
        for i, j in enumerate(jobs)
    ]
    return {k: sum(c[k] for c in counts) for k in ("occurrences", "lost", "duplicated")}


def recovery(receiver: Receiver, fault_began: float) -> dict[str, float]:
    """The largest lateness of a delivery since the fault began, and how long after it deliveries were on time
    again (the first of a run of on-time ones that lasts to the end)."""
    late = lateness(receiver, [f"/c{i}" for i in range(JOBS)], fault_began)
    worst = max((lag for _, lag in late), default=0.0)
    on_time_again = fault_began
    for at, lag in late:
        if lag >= ON_TIME_SECONDS:
            on_time_again = at
    return {"largest_lateness_s": round(worst, 1), "on_time_again_after_s": round(on_time_again - fault_began, 1)}


def report(scenario: str, figures: dict[str, Any]) -> None:
    print(f"\nFIGURES cluster: {scenario}: {json.dumps(figures)}")


async def wait_on_time(receiver: Receiver, since: float) -> None:
    """Until every job has had a delivery on time after `since`."""

    def on_time() -> bool:
        return all(any(lag < ON_TIME_SECONDS for _, lag in lateness(receiver, [f"/c{i}"], since)) for i in range(JOBS))

    await eventually(on_time, timeout=60, what="every job delivered on time again")


async def after_the_fault(
    api: Api, jobs: list[str], receiver: Receiver, began: float, began_at: datetime
) -> dict[str, Any]:
    """The fault is over: once every job is on time again, the oracle on each job's history, and the figures."""
    ended_at = datetime.now(UTC)
    await wait_on_time(receiver, time.time())
    return await settle_and_check(api, jobs, receiver, (began_at, ended_at)) | recovery(receiver, began)


def server_named(cluster: EmbeddedNatsCluster, name: str) -> EmbeddedNats:
    (found,) = [s for s in cluster.servers if s.name == name]
    return found


async def test_a_server_that_leads_nothing_killed(on: OnCluster) -> None:
    settings, nats_cluster, receiver = on.settings, on.cluster, on.receiver
    async with on.firing() as (api, jobs):
        led = set((await leaders(settings)).values())
        target = next((s for s in nats_cluster.servers if s.name not in led), nats_cluster.servers[0])
        assert target.name is not None
        await lead_nothing(settings, target.name)
        on.touched.append(target)
        began, began_at = time.time(), datetime.now(UTC)
        target.kill()
        await asyncio.sleep(10)  # the server stays down while the jobs fire on the two left
        await asyncio.to_thread(target.start)
        figures = await after_the_fault(api, jobs, receiver, began, began_at)
    report("a server that leads nothing SIGKILLed for 10 s", figures)
    assert figures["largest_lateness_s"] < 5, figures


async def test_the_streams_leader_frozen_past_the_election_timeout(on: OnCluster) -> None:
    """SIGSTOP of the server leading the EXECUTIONS stream: to the other two it is partitioned away (its sockets
    stay open, nothing answers); they elect new leaders; it is resumed 15 s later and rejoins as a follower."""
    settings, nats_cluster, receiver = on.settings, on.cluster, on.receiver
    async with on.firing() as (api, jobs):
        leader = (await leaders(settings))[Names(settings.namespace).executions_stream]
        target = server_named(nats_cluster, leader)
        on.touched.append(target)
        assert target.pid is not None
        began, began_at = time.time(), datetime.now(UTC)
        os.kill(target.pid, signal.SIGSTOP)
        await asyncio.sleep(15)
        os.kill(target.pid, signal.SIGCONT)
        figures = await after_the_fault(api, jobs, receiver, began, began_at)
    report("the EXECUTIONS stream's leader frozen (SIGSTOP) for 15 s", figures)


async def test_two_of_three_servers_down_then_back(on: OnCluster) -> None:
    """No quorum: commands answer 503 within seconds; nothing is lost; everything resumes by itself once a second
    server is back. A command refused at once was not applied; one answered 503 after its publish timed out has an
    unknown outcome (its write may land once the cluster recovers: seen once in about ten runs), so it is counted,
    not forbidden."""
    nats_cluster, receiver = on.cluster, on.receiver
    async with on.firing() as (api, jobs):
        status, before = await api.call("GET", f"/api/jobs?account_id={on.account_id}")
        assert status == 200
        down = nats_cluster.servers[:2]
        on.touched.extend(down)
        began, began_at = time.time(), datetime.now(UTC)
        for server in down:
            server.kill()
        answers = []
        for n in range(3):
            started = time.monotonic()
            body = {"account_id": str(on.account_id), "name": f"no quorum {n}", "schedule": "0 0 0 1 1 *", "type": 1}
            status, error = await api.call("POST", "/api/jobs", json=body)
            answers.append((status, round(time.monotonic() - started, 1)))
            assert status == 503 and error["error_code"] == "SERVICE_UNAVAILABLE", (status, error)
        await asyncio.sleep(max(0.0, 10 - (time.time() - began)))
        for server in down:
            await asyncio.to_thread(server.start)
        ended_at = datetime.now(UTC)
        await wait_on_time(receiver, time.time())
        status, after = await api.call("GET", f"/api/jobs?account_id={on.account_id}")
        assert status == 200
        timed_out = sum(1 for _, seconds in answers if seconds >= AMBIGUOUS_AFTER_SECONDS)
        applied = after["total"] - before["total"]
        assert 0 <= applied <= timed_out, f"a command refused at once took effect: {answers}, {applied} applied"

        async def commands_work() -> bool:  # the JOBS stream may have its leader back later than the EXECUTIONS one
            body = {"account_id": str(on.account_id), "name": "quorum back", "schedule": "0 0 0 1 1 *", "type": 1}
            status, _ = await api.call("POST", "/api/jobs", json=body)
            return status == 201

        await eventually(commands_work, timeout=60, what="commands taken again")
        commands_back = time.time() - began
        figures = await settle_and_check(api, jobs, receiver, (began_at, ended_at)) | recovery(receiver, began)
    figures["slowest_503_s"] = max(seconds for _, seconds in answers)
    figures["answered_503_after_a_timeout"] = timed_out
    figures["of_those_applied"] = applied
    figures["commands_taken_again_after_s"] = round(commands_back, 1)
    report("two of three servers SIGKILLed for 10 s (no quorum)", figures)
    assert figures["slowest_503_s"] < 10, answers


async def streams_current(settings: Settings) -> bool:
    """Every one of this test's streams and buckets has a leader and two current replicas."""
    nc = await nats.connect(servers(settings.nats_url))
    try:
        namespace = settings.namespace.lower()
        infos = [s for s in await nc.jetstream().streams_info() if namespace in s.config.name.lower()]
        return bool(infos) and all(
            s.cluster is not None
            and s.cluster.leader is not None
            and len(s.cluster.replicas or []) == 2
            and all(r.current for r in s.cluster.replicas or [])
            for s in infos
        )
    except (nats.errors.Error, TimeoutError):
        return False
    finally:
        await nc.close()


async def test_a_rolling_restart_of_the_three_servers(on: OnCluster) -> None:
    """Each server stopped (SIGTERM) and started again in turn, the next only once every stream is current again,
    as an upgrade does."""
    settings, nats_cluster, receiver = on.settings, on.cluster, on.receiver
    async with on.firing() as (api, jobs):
        on.touched.extend(nats_cluster.servers)
        began, began_at = time.time(), datetime.now(UTC)
        for server in nats_cluster.servers:
            # In threads: the services run in this event loop, which a blocking wait would stall.
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            await asyncio.to_thread(nats_cluster.wait_healthy, [server])
            await eventually(lambda: streams_current(settings), timeout=60, what=f"streams current after {server.name}")
        figures = await after_the_fault(api, jobs, receiver, began, began_at)
        figures["restart_s"] = round(time.time() - began, 1)
    report("a rolling restart of the three servers", figures)


async def lead_both(settings: Settings, streams: tuple[str, str]) -> str:
    """Step the second stream's leadership down until the server leading the first leads it too; that server."""
    nc = await nats.connect(servers(settings.nats_url))
    try:
        js = nc.jetstream()

        async def together() -> str | None:
            first, second = [(await js.stream_info(s)).cluster for s in streams]
            if first is None or second is None or first.leader is None:
                return None
            if first.leader == second.leader:
                return first.leader
            await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{streams[1]}", b"", timeout=5)
            return None

        return await eventually(together, timeout=60, what="one server leading both streams")
    finally:
        await nc.close()


async def test_the_server_leading_jobs_and_executions_killed_during_a_burst(on: OnCluster) -> None:
    """SIGKILL of the server leading both the JOBS and the EXECUTIONS stream, restarted 10 s later."""
    settings, nats_cluster, receiver = on.settings, on.cluster, on.receiver
    names = Names(settings.namespace)
    async with on.firing() as (api, jobs):
        leader = await lead_both(settings, (names.executions_stream, names.jobs_stream))
        target = server_named(nats_cluster, leader)
        on.touched.append(target)
        began, began_at = time.time(), datetime.now(UTC)
        target.kill()
        await asyncio.sleep(10)
        await asyncio.to_thread(target.start)
        figures = await after_the_fault(api, jobs, receiver, began, began_at)
    report("the server leading JOBS and EXECUTIONS SIGKILLed, restarted 10 s later", figures)
