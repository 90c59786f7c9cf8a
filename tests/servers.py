"""Real NATS and Postgres for the test run: embedded wheels by default, existing servers via NATS_URL and
DATABASE_URL, or Docker containers with SCHEDULER_TEST_CONTAINERS=1."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from scheduler.embedded import EmbeddedNats, EmbeddedPostgres


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def nats_server(directory: Path) -> Iterator[str]:
    if os.environ.get("NATS_URL"):
        yield os.environ["NATS_URL"]
    elif os.environ.get("SCHEDULER_TEST_CONTAINERS") == "1":
        from testcontainers.nats import NatsContainer

        with NatsContainer(image="nats:2.15", jetstream=True) as container:
            yield container.nats_uri()
    else:
        with EmbeddedNats(directory) as server:
            yield server.url


@contextlib.contextmanager
def postgres_server(directory: Path) -> Iterator[str]:
    """Yields an admin URL; tests create their own databases on that server."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
    elif os.environ.get("SCHEDULER_TEST_CONTAINERS") == "1":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver=None) as container:
            yield container.get_connection_url()
    else:
        with EmbeddedPostgres(directory) as server:
            yield server.url("postgres")
