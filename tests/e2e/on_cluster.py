"""What the cluster fault tests share: a test's view of the three-server cluster with the services on it, where the
streams' leaders are, and the figures taken after a fault (see test_cluster_faults.py)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import nats

from scheduler.embedded import EmbeddedNats, EmbeddedNatsCluster
from shared.bus.connection import servers
from shared.settings import Settings
from tests.e2e.harness import Api, api_client, running
from tests.e2e.test_faults import check_every_second, firing, settled_history
from tests.e2e.test_nexus_api import nominal_of
from tests.receiver import Receiver
from tests.waiting import eventually


@dataclass(frozen=True, slots=True)
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


# Jobs firing every second in each test, and the lateness under which a delivery counts as on time (the
# dispatcher's own lateness on this box is far below it).
JOBS = 3
ON_TIME_SECONDS = 1.0


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


async def lead(settings: Settings, stream: str, server: str) -> None:
    """Step the stream's leadership down, asking for `server`, until `server` leads it."""
    nc = await nats.connect(servers(settings.nats_url))
    try:
        js = nc.jetstream()
        preferred = json.dumps({"placement": {"preferred": server}}).encode()

        async def led() -> bool:
            try:
                cluster = (await js.stream_info(stream)).cluster
                if cluster is not None and cluster.leader == server:
                    return True
                await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", preferred, timeout=5)
            except nats.errors.Error:
                pass  # an election under way answers 503 or not at all: ask again
            return False

        await eventually(led, timeout=60, what=f"{server} leading {stream}")
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


async def disable_when_taken(api: Api, job_id: str) -> None:
    """Pause a job, retrying a 503 as a client would (pausing twice changes nothing): just after a fault the JOBS
    stream may still be electing its leader while the jobs already fire on time again (seen once after the frozen
    leader resumed)."""

    async def paused() -> bool:
        status, body = await api.call("PATCH", f"/api/jobs/{job_id}/disable")
        assert status in (200, 503), (status, body)
        return status == 200

    await eventually(paused, timeout=30, what=f"job {job_id} paused after the fault")


async def settle_and_check(
    api: Api, jobs: list[str], receiver: Receiver, fault: tuple[datetime, datetime]
) -> dict[str, int]:
    """Disable the jobs, wait for their histories to settle, and apply the oracle to each."""
    for job_id in jobs:
        await disable_when_taken(api, job_id)
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
