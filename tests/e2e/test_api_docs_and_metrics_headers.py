"""What the api's pages and scrape endpoint look like to other programs: /docs and /redoc work offline (their
scripts and styles come from the api itself), and /metrics's Prometheus Content-Type parses in Go's MIME parser.

The api and projector run in this test's event loop on real NATS and Postgres.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from shared.settings import Settings
from tests.e2e.conftest import token_for
from tests.e2e.harness import Api, api_client, running

pytestmark = pytest.mark.e2e


@pytest.fixture
async def api(settings: Settings, account_id: uuid.UUID) -> AsyncIterator[Api]:
    async with (
        running(settings, ["api", "projector"]),
        api_client(settings.api_port, {"Authorization": f"Bearer {token_for(account_id)}"}) as client,
    ):
        yield client


PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


async def test_prometheus_text_has_one_content_type_with_each_parameter_once(api: Api) -> None:
    scraper = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    for path, accept in (("/metrics?format=prometheus", "*/*"), ("/metrics", scraper)):
        async with api.session.get(api.base + path, headers=api.headers | {"Accept": accept}) as response:
            assert response.status == 200, await response.text()
            assert response.headers.getall("Content-Type") == [PROMETHEUS_TEXT], (path, response.headers)
            assert "# TYPE scheduler_jobs gauge" in await response.text()

