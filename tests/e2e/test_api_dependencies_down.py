"""When Postgres or NATS is gone the api answers 503 in the documented format, never a 500 or a hang."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import msgspec
import nats.errors
import pytest

from scheduler.embedded import EmbeddedNats
from scheduler.runner import run_services
from services.api.core.job_commands import APPEND_ATTEMPTS
from shared.bus.job_store import NatsJobEventStore
from shared.contracts.jobs import JobEvent, JobUpdated
from shared.settings import Settings
from tests.e2e.harness import Api, api_client, running
from tests.e2e.test_api_jobs import assert_error, create
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

# Generous bounds that still tell a prompt 503 from a hang (the client would wait forever otherwise).
ANSWER_WITHIN_SECONDS = 20


async def call(api: Api, method: str, path: str, **kwargs: object) -> tuple[int, object]:
    async with asyncio.timeout(ANSWER_WITHIN_SECONDS):
        return await api.call(method, path, **kwargs)


async def test_database_gone_is_503_database_error(
    settings: Settings, auth_headers: dict[str, str], account_id: uuid.UUID, postgres_admin_url: str
) -> None:
    async with running(settings, ["api", "projector"]), api_client(settings.api_port, auth_headers) as api:
        job = await create(api, account_id)
        database = urlsplit(settings.database_url).path.lstrip("/")
        admin = await asyncpg.connect(postgres_admin_url)
        try:
            await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        finally:
            await admin.close()

        for method, path in [
            ("GET", f"/api/jobs/{job['id']}"),
            ("GET", f"/api/jobs?account_id={account_id}"),
            ("GET", f"/api/jobs/{job['id']}/executions"),
            ("GET", "/metrics"),
        ]:
            status, error = await call(api, method, path)
            assert_error(status, error, 503, "DATABASE_ERROR")
        status, health = await call(api, "GET", "/health/detailed")
        assert status == 503
        assert isinstance(health, dict)
        assert (health["status"], health["database"], health["nats"]) == ("unhealthy", "disconnected", "connected")

        # Commands go to the event log, not to Postgres: they are still accepted and say what they did.
        status, paused = await call(api, "PATCH", f"/api/jobs/{job['id']}/disable")
        assert status == 200, paused
        assert isinstance(paused, dict)
        assert (paused["id"], paused["enabled"], paused["next_run_at"]) == (job["id"], False, None)


async def test_nats_gone_is_503_for_commands_while_queries_still_answer(
    settings: Settings, auth_headers: dict[str, str], account_id: uuid.UUID, tmp_path: Path
) -> None:
    nats = EmbeddedNats(tmp_path / "nats").start()
    settings = settings.replaced(nats_url=nats.url)
    try:
        async with running(settings, ["api", "projector"]), api_client(settings.api_port, auth_headers) as api:
            job = await create(api, account_id)
            nats.stop()
            body = {"account_id": str(account_id), "name": "n", "schedule": "0 2 * * *", "type": 1}
            for method, path, payload in [
                ("POST", "/api/jobs", body),
                ("PUT", f"/api/jobs/{job['id']}", {"name": "renamed"}),
            ]:
                status, error = await call(api, method, path, json=payload)
                assert_error(status, error, 503, "SERVICE_UNAVAILABLE")
            status, got = await call(api, "GET", f"/api/jobs/{job['id']}")
            assert (status, got) == (200, job)
            status, health = await call(api, "GET", "/health/detailed")
            assert status == 503
            assert isinstance(health, dict)
            assert (health["database"], health["nats"], health["scheduler_service"]) == (
                "connected",
                "disconnected",
                "unknown",
            )

            # A refused command did not happen: once NATS is back, nothing of it shows up.
            nats = EmbeddedNats(tmp_path / "nats", port=nats.port).start()

            async def accepted() -> object:
                status, created = await call(api, "POST", "/api/jobs", json=body | {"name": "after"})
                return created if status == 201 else None

            await eventually(accepted, timeout=20, what="commands accepted after NATS came back")

            async def names() -> list[str] | None:
                status, page = await call(api, "GET", f"/api/jobs?account_id={account_id}")
                assert status == 200
                assert isinstance(page, dict)
                found = sorted(j["name"] for j in page["items"])
                return found if "after" in found else None

            assert await eventually(names, timeout=30, what="the new job in the read model") == [
                "Daily Backup",
                "after",
            ]
    finally:
        nats.stop()


async def test_a_stopped_ticker_makes_detailed_health_503_until_it_beats_again(
    settings: Settings, auth_headers: dict[str, str]
) -> None:
    async with running(settings, ["api", "projector"]), api_client(settings.api_port, auth_headers) as api:
        status, health = await call(api, "GET", "/health/detailed")
        assert status == 503
        assert isinstance(health, dict)
        assert (health["database"], health["nats"], health["scheduler_service"]) == (
            "connected",
            "connected",
            "stopped",
        )
        stop = asyncio.Event()
        ticker = asyncio.create_task(run_services(settings, ["ticker"], stop))
        try:

            async def healthy() -> object:
                status, health = await call(api, "GET", "/health/detailed")
                return health if status == 200 else None

            health = await eventually(healthy, timeout=20, what="the ticker's heartbeat")
            assert isinstance(health, dict)
            assert (health["status"], health["scheduler_service"]) == ("healthy", "running")
        finally:
            stop.set()
            await asyncio.wait_for(ticker, 30)


async def test_a_write_that_keeps_losing_the_race_is_409_and_loses_nothing(
    settings: Settings, auth_headers: dict[str, str], account_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer appends to the job between every load and append of one PUT: each of its tries hits a real
    wrong-last-sequence from JetStream, so after its retries the PUT is a 409 and every competing write stands."""
    original = NatsJobEventStore.append
    competitors: list[str] = []

    async def append_after_a_competitor(self: NatsJobEventStore, event: JobEvent, expected_sequence: int) -> int:
        if isinstance(event, JobUpdated) and event.job.name == "loser":
            name = f"competitor {len(competitors) + 1}"
            competitor = msgspec.structs.replace(
                event, event_id=uuid.uuid4(), job=msgspec.structs.replace(event.job, name=name)
            )
            await original(self, competitor, expected_sequence)
            competitors.append(name)
        return await original(self, event, expected_sequence)

    monkeypatch.setattr(NatsJobEventStore, "append", append_after_a_competitor)
    async with running(settings, ["api", "projector"]), api_client(settings.api_port, auth_headers) as api:
        job = await create(api, account_id)
        status, error = await call(api, "PUT", f"/api/jobs/{job['id']}", json={"name": "loser"})
        assert_error(status, error, 409, "CONFLICT")
        assert len(competitors) == APPEND_ATTEMPTS

        async def last_competitor() -> object:
            status, got = await call(api, "GET", f"/api/jobs/{job['id']}")
            assert status == 200
            assert isinstance(got, dict)
            return got if got["name"] == competitors[-1] else None

        await eventually(last_competitor, timeout=20, what="the last competing write in the read model")


async def _nexus_number(api: Api, job_uuid: str) -> int:
    status, jobs = await call(api, "GET", "/api/v1/jobs/?limit=1000")
    assert status == 200, jobs
    assert isinstance(jobs, list)
    return next(int(j["id"]) for j in jobs if j["uuid"] == job_uuid)


async def test_an_event_store_that_does_not_answer_in_time_is_503_on_each_surface_in_its_shape(
    settings: Settings, auth_headers: dict[str, str], account_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NATS timeout: the change may still be applied, and both API surfaces say so (NEXUS once answered it in the
    other surface's shape)."""
    async with running(settings, ["api", "projector"]), api_client(settings.api_port, auth_headers) as api:
        job = await create(api, account_id)
        number = await _nexus_number(api, job["id"])

        async def times_out(self: NatsJobEventStore, event: JobEvent, expected_sequence: int) -> int:
            raise nats.errors.TimeoutError

        monkeypatch.setattr(NatsJobEventStore, "append", times_out)
        status, error = await call(api, "PUT", f"/api/jobs/{job['id']}", json={"name": "renamed"})
        assert_error(status, error, 503, "SERVICE_UNAVAILABLE")
        assert isinstance(error, dict)
        assert error["detail"].startswith("the event store did not answer in time; if this was a change it may")
        status, error = await call(api, "PUT", f"/api/v1/jobs/{number}", json={"name": "renamed"})
        assert status == 503, error
        assert isinstance(error, dict)
        assert set(error) == {"detail"}, error
        assert error["detail"].startswith("The event store did not answer in time; if this was a change it may")


async def test_a_connection_error_on_the_way_to_the_event_store_is_not_called_a_database_error(
    settings: Settings, auth_headers: dict[str, str], account_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare OSError (a reset connection) met while appending to the event log names the event store, on both
    surfaces, while the database still answers."""
    async with running(settings, ["api", "projector"]), api_client(settings.api_port, auth_headers) as api:
        job = await create(api, account_id)
        number = await _nexus_number(api, job["id"])

        async def reset(self: NatsJobEventStore, event: JobEvent, expected_sequence: int) -> int:
            raise ConnectionResetError("connection reset by peer")

        monkeypatch.setattr(NatsJobEventStore, "append", reset)
        status, error = await call(api, "PATCH", f"/api/jobs/{job['id']}/disable")
        assert_error(status, error, 503, "SERVICE_UNAVAILABLE")
        assert isinstance(error, dict)
        assert error["detail"] == "the event store is unavailable, try again shortly"
        status, error = await call(api, "POST", f"/api/v1/jobs/{number}/pause")
        assert (status, error) == (503, {"detail": "The event store is unavailable, try again shortly"})
        status, got = await call(api, "GET", f"/api/jobs/{job['id']}")
        assert (status, got) == (200, job)
