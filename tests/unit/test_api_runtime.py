"""The api's typed dependencies: none exists until the lifespan has connected them, and a request before then is a
503 in each surface's format (services/api/http/dependencies.py)."""

from __future__ import annotations

import uuid

import pytest
from litestar.datastructures import State
from litestar.testing import TestClient

from services.api.app import create_app
from services.api.core.api_errors import DependencyUnavailableError
from services.api.core.auth import mint_token
from services.api.http.dependencies import ApiRuntime, runtime_of
from shared.settings import Settings, load_settings

pytestmark = pytest.mark.unit

SECRET = "s" * 40


def settings() -> Settings:
    # Nothing listens there: the lifespan is never run in these tests, so nothing connects.
    return load_settings({"SUPABASE_JWT_SECRET": SECRET, "NATS_URL": "nats://x:1", "DATABASE_URL": "postgresql://x/y"})


def test_services_before_the_lifespan_has_connected_are_a_503_still_starting() -> None:
    runtime = ApiRuntime(settings())
    assert runtime.started is None
    with pytest.raises(DependencyUnavailableError, match="the api is still starting"):
        _ = runtime.services


def test_the_runtime_is_found_in_the_state_it_was_put_into() -> None:
    runtime, state = ApiRuntime(settings()), State()
    runtime.into(state)
    assert runtime_of(state) is runtime


def test_a_request_before_the_api_has_connected_is_503_on_both_api_surfaces() -> None:
    app = create_app(settings())
    token = mint_token(SECRET, accounts=[uuid.uuid4()])
    client = TestClient(app)  # not entered: no lifespan runs
    client.headers["Authorization"] = f"Bearer {token}"
    primary = client.get(f"/api/jobs/{uuid.uuid4()}")
    assert (primary.status_code, primary.json()) == (
        503,
        {"detail": "the api is still starting", "error_code": "SERVICE_UNAVAILABLE", "status_code": 503},
    )
    nexus = client.get("/api/v1/jobs/1")
    assert (nexus.status_code, nexus.json()) == (503, {"detail": "the api is still starting"})
    health = client.get("/health/detailed")
    assert health.status_code == 503
    assert (health.json()["database"], health.json()["nats"]) == ("disconnected", "disconnected")
