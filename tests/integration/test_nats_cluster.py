"""The bus on a three-server NATS cluster: every stream and bucket replicated three ways, and the job store going on
when the server leading the JOBS stream is killed (a new leader is elected among the other two, the client moves to
a surviving server by itself), nothing lost or written twice. Real nats-servers from the wheel, clustered over
loopback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import nats.errors
import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from scheduler.embedded import EmbeddedNats, EmbeddedNatsCluster
from shared.bus.connection import connect, disconnect
from shared.bus.job_store import NatsJobEventStore
from shared.bus.leases import leases_bucket
from shared.bus.pipelined import Outgoing, publish_all
from shared.bus.streams import ensure_streams, ticker_bucket, timers_bucket
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.factories import job_created, job_state
from tests.waiting import eventually

pytestmark = pytest.mark.integration

YEARLY = "0 0 1 1 *"


@pytest.fixture
def restarted(nats_cluster: EmbeddedNatsCluster) -> Iterator[list[EmbeddedNats]]:
    """Servers a test stopped are started again after it, and the cluster is whole before the next test."""
    stopped: list[EmbeddedNats] = []
    yield stopped
    for server in stopped:
        if not server.running:
            server.start()
    nats_cluster.wait_healthy(nats_cluster.servers)


async def replicas_current(js: JetStreamContext, stream: str, servers: int) -> bool:
    """The stream has a leader and `servers - 1` replicas, every one of them current."""
    cluster = (await js.stream_info(stream)).cluster
    if cluster is None or cluster.leader is None:
        return False
    replicas = cluster.replicas or []
    return len(replicas) == servers - 1 and all(r.current for r in replicas)


async def test_every_stream_and_bucket_is_replicated_on_the_three_servers(cluster_settings: Settings) -> None:
    names = Names(cluster_settings.namespace)
    nc = await connect(cluster_settings.nats_url, "test")
    try:
        js = nc.jetstream()
        await ensure_streams(js, cluster_settings)
        await leases_bucket(js, cluster_settings)
        await ticker_bucket(js, cluster_settings)
        await timers_bucket(js, cluster_settings)
        streams = [names.jobs_stream, names.executions_stream, names.tasks_stream]
        buckets = [f"KV_{name}" for name in (names.leases_bucket, names.ticker_bucket, names.timers_bucket)]
        for stream in [*streams, *buckets]:
            assert (await js.stream_info(stream)).config.num_replicas == 3, stream
            await eventually(lambda s=stream: replicas_current(js, s, 3), timeout=15, what=f"{stream} on 3 servers")
    finally:
        await disconnect(nc)


async def test_the_job_store_goes_on_when_the_jobs_stream_leader_is_killed(
    cluster_settings: Settings, nats_cluster: EmbeddedNatsCluster, restarted: list[EmbeddedNats]
) -> None:
    names = Names(cluster_settings.namespace)
    nc = await connect(cluster_settings.nats_url, "test")
    try:
        js = nc.jetstream()
        await ensure_streams(js, cluster_settings)
        store = NatsJobEventStore(js, names)
        before = [job_state(YEARLY) for _ in range(20)]
        for state in before:
            await store.append(job_created(state), 0)
        await eventually(lambda: replicas_current(js, names.jobs_stream, 3), timeout=15, what="replicas current")
        leader = (await js.stream_info(names.jobs_stream)).cluster.leader  # type: ignore[union-attr]
        (lost,) = [s for s in nats_cluster.servers if s.name == leader]
        restarted.append(lost)
        lost.kill()

        # Each append is retried until the two left have a leader again: the same event, so the same message id,
        # which the stream keeps once however many tries reached it.
        after = [job_state(YEARLY) for _ in range(20)]
        for state in after:
            event = job_created(state)

            async def appended(event: object = event) -> bool:
                try:
                    await store.append(event, 0)  # type: ignore[arg-type]
                except (nats.errors.Error, TimeoutError):
                    return False
                return True

            await eventually(appended, timeout=30, what="an append with the leader gone")
        new_leader = (await js.stream_info(names.jobs_stream)).cluster.leader  # type: ignore[union-attr]
        assert new_leader is not None and new_leader != leader

        lost.start()
        await eventually(
            lambda: replicas_current(js, names.jobs_stream, 3), timeout=30, what="the restarted server caught up"
        )
        for state in before + after:
            loaded = await store.load(state.id)
            assert loaded is not None and loaded.event.job.id == state.id
        assert (await js.stream_info(names.jobs_stream)).state.messages == len(before) + len(after)
    finally:
        await disconnect(nc)


async def test_a_batch_cut_off_by_its_server_dying_goes_again_on_another_at_once(
    cluster_settings: Settings, nats_cluster: EmbeddedNatsCluster, restarted: list[EmbeddedNats]
) -> None:
    """The publishes of a round in flight when the client's server dies get no ack; the round ends when the client
    is connected to another server, not when its ack timeout (here 30 s) runs out, and nothing is stored twice."""
    nc = await connect(cluster_settings.nats_url, "test")
    try:
        js = nc.jetstream()
        subject = f"cut.{uuid.uuid4().hex}"
        stream = f"CUT_{uuid.uuid4().hex[:8]}"
        await js.add_stream(StreamConfig(name=stream, subjects=[subject], num_replicas=3))
        await eventually(lambda: replicas_current(js, stream, 3), timeout=15, what="the stream on 3 servers")
        batch = [Outgoing(subject, b"x" * 100, f"m{i}") for i in range(20_000)]
        (ours,) = [s for s in nats_cluster.servers if s.url.endswith(f":{nc.connected_url.port}")]  # type: ignore[union-attr]
        publishing = asyncio.create_task(publish_all(js, batch, timeout=30, within=60))
        await asyncio.sleep(0)  # the first round goes out
        restarted.append(ours)
        ours.kill()
        acks = await asyncio.wait_for(publishing, timeout=20)
        assert sorted(a.seq for a in acks) == list(range(1, len(batch) + 1))
        assert (await js.stream_info(stream)).state.messages == len(batch)
        # The stream is left: deleting it needs the cluster's meta leader, which may be the server just killed.
    finally:
        await disconnect(nc)
