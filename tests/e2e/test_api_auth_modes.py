"""Start-up refusals of the api, and the explicit open mode for local clients that cannot send tokens."""

from __future__ import annotations

import logging
import os
import subprocess
import uuid

import pytest

from services.api.core.auth import OPEN_MODE_ACCOUNT
from shared.settings import Settings
from tests.e2e.harness import SCHEDULER, api_client, running
from tests.e2e.test_api_jobs import assert_error, create

pytestmark = pytest.mark.e2e


def run_api(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_", "SUPABASE_"))}
    return subprocess.run(
        [SCHEDULER, "api"],
        env=base | {"NATS_URL": "nats://127.0.0.1:1", "DATABASE_URL": "postgresql://u@127.0.0.1:1/d"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SUPABASE_JWT_SECRET is not set"),
        ({"SCHEDULER_AUTH_MODE": "open", "SCHEDULER_API_HOST": "0.0.0.0"}, "only listens on loopback"),  # noqa: S104
        ({"SCHEDULER_AUTH_MODE": "sometimes", "SUPABASE_JWT_SECRET": "x" * 40}, "SCHEDULER_AUTH_MODE"),
    ],
)
def test_api_refuses_to_start_with_a_clear_message(env: dict[str, str], message: str) -> None:
    result = run_api(**env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output, output
    assert "Traceback" not in output, output


async def test_open_mode_needs_no_token_and_acts_as_the_default_account(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.replaced(auth_mode="open", jwt_secret=None)
    with caplog.at_level(logging.WARNING):
        async with running(settings, ["api", "projector"]), api_client(settings.api_port, {}) as api:
            job = await create(api, OPEN_MODE_ACCOUNT)
            status, got = await api.call("GET", f"/api/jobs/{job['id']}", headers={"Authorization": "Bearer junk"})
            assert (status, got) == (200, job)
            status, page = await api.call("GET", f"/api/jobs?account_id={OPEN_MODE_ACCOUNT}")
            assert (status, page["total"]) == (200, 1)
            status, error = await api.call("GET", f"/api/jobs?account_id={uuid.uuid4()}")
            assert_error(status, error, 403, "FORBIDDEN")
            # The dashboard needs no sign-in either: it shows the default account's jobs at once.
            async with api.session.get(api.base + "/ui/jobs") as response:
                assert response.status == 200 and job["name"] in await response.text()
            async with api.session.get(api.base + "/ui/sign-in", allow_redirects=False) as response:
                assert (response.status, response.headers["location"]) == (303, "/ui")
    assert any("AUTH MODE IS OPEN" in r.getMessage() for r in caplog.records)
