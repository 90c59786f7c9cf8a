"""What the api's pages and scrape endpoint look like to other programs: /docs and /redoc work offline (their
scripts and styles come from the api itself), and /metrics's Prometheus Content-Type parses in Go's MIME parser.

The api and projector run in this test's event loop on real NATS and Postgres.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Route

from shared.settings import Settings
from tests.e2e.browser import launched
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


# A page's own assets: <script src>, <link href> (stylesheets, icons) and url(...) in its inline styles.
_ASSET = re.compile(r"""<script[^>]*\bsrc=["']([^"']+)|<link[^>]*\bhref=["']([^"']+)|url\(["']?([^"')]+)""")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}


async def test_docs_and_redoc_load_every_asset_from_the_api_itself(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        async with api.session.get(api.base + page) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/html")
            html = await response.text()
        assets = [next(g for g in match if g) for match in _ASSET.findall(html)]
        assert any(a.endswith(".js") for a in assets), (page, assets)
        foreign = [a for a in assets if not a.startswith("/") or a.startswith("//")]
        assert not foreign, (page, foreign)
        head = html[: html.index("<body")]
        assert not re.search(r"https?://", head), (page, re.findall(r"https?://[^\s\"'<>]+", head))
        for asset in assets:
            async with api.session.get(api.base + asset) as response:
                body = await response.read()
                assert response.status == 200, (page, asset)
                suffix = asset[asset.rfind(".") :]
                assert response.headers["Content-Type"].split(";")[0] == _TYPES[suffix], (asset, response.headers)
                assert len(body) > 1000 or suffix == ".png", (asset, len(body))


async def test_docs_and_redoc_render_in_a_browser_that_reaches_nothing_else(api: Api) -> None:
    elsewhere: list[str] = []

    async def only_the_api(route: Route) -> None:
        if route.request.url.startswith(api.base + "/"):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    async with launched() as browser:
        page = await browser.new_page()
        await page.route("**/*", only_the_api)
        await page.goto(api.base + "/docs")
        # Swagger UI drew the operations of the document.
        await page.locator(".opblock-summary-path", has_text="/api/jobs").first.wait_for(timeout=30_000)
        await page.goto(api.base + "/redoc")
        # ReDoc drew the document: its title, and the operations in its menu.
        await page.locator("h1", has_text="Scheduler").first.wait_for(timeout=30_000)
        await page.get_by_text("Create a job").first.wait_for(state="attached", timeout=30_000)
    # Only ReDoc's "API docs by Redocly" badge is fetched from elsewhere (built into its bundle); it hides itself when
    # that fails, as it did here.
    badge = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert not [url for url in elsewhere if not url.startswith("data:") and url != badge], elsewhere
