"""Fixtures: real servers once per run; a fresh namespace (streams, buckets) and database per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import hypothesis
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from scheduler.embedded import EmbeddedNatsCluster
from services.api.core.auth import mint_token
from shared.observability import tracing
from shared.settings import Settings, load_settings
from tests.receiver import Receiver
from tests.servers import nats_server, postgres_server, with_database

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"

# Examples per property test that sets no number itself: 40 in the whole suite (CI), 10 in `just test-unit`
# (--hypothesis-profile=unit), which must stay fast. Pinned @example cases run in both.
hypothesis.settings.register_profile("suite", max_examples=40, deadline=None)
hypothesis.settings.register_profile("unit", max_examples=10, deadline=None)
hypothesis.settings.load_profile("suite")


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def nats_url(servers_dir: Path) -> Iterator[str]:
    with nats_server(servers_dir / "nats") as url:
        yield url


@pytest.fixture(scope="session")
def nats_cluster(servers_dir: Path) -> Iterator[EmbeddedNatsCluster]:
    """Three nats-servers with JetStream clustered over loopback, started when a test first asks. A test that stops
    or kills a member starts it again before it ends (`restarted`)."""
    with EmbeddedNatsCluster(servers_dir / "nats-cluster", 3) as cluster:
        yield cluster


@pytest.fixture(params=["one nats-server", "a cluster of three"])
def settings_on(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test's settings on one nats-server, then on the three-server cluster (everything replicated three ways)."""
    if request.param == "one nats-server":
        return settings
    cluster: EmbeddedNatsCluster = request.getfixturevalue("nats_cluster")
    return settings.replaced(nats_url=cluster.url, stream_replicas=3)


@pytest.fixture(scope="session")
def postgres_admin_url(servers_dir: Path) -> Iterator[str]:
    with postgres_server(servers_dir / "postgres") as url:
        yield url


@pytest.fixture
async def database_url(postgres_admin_url: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield with_database(postgres_admin_url, name)
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def settings(nats_url: str, database_url: str, unused_tcp_port: int) -> Settings:
    return load_settings(
        {},
        nats_url=nats_url,
        database_url=database_url,
        namespace=f"t{uuid.uuid4().hex[:10]}",
        jwt_secret=JWT_SECRET,
        api_port=unused_tcp_port,
        delivery_timeout_seconds=5,
        max_delivery_timeout_seconds=8,
        ack_wait_seconds=10,
        # The tests' receivers listen on loopback, which the egress policy refuses unless allowed.
        egress_allow="127.0.0.0/8,::1",
        # Tests write histories at fixed dates, months back: kept forever unless a test is about retention.
        execution_retention_days=0,
    )


@pytest.fixture
def cluster_settings(settings: Settings, nats_cluster: EmbeddedNatsCluster) -> Settings:
    """The test's settings on the cluster: every server listed, streams and buckets replicated three ways."""
    return settings.replaced(nats_url=nats_cluster.url, stream_replicas=3)


@pytest.fixture
def account_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def auth_headers(account_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT_SECRET, accounts=[account_id])}"}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Traces on for the test, into memory (shared/observability/tracing.py), and off again after it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
