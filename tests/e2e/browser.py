"""Headless Chromium for the dashboard's browser tests: Debian's `chromium` package, driven by Playwright.

Playwright's own browser downloads are not used (this machine's network refuses them): the tests launch the
system's Chromium, found at SCHEDULER_TEST_CHROMIUM or /usr/bin/chromium. Without one the tests are skipped, unless
SCHEDULER_REQUIRE_BROWSER is set (CI sets it), when they fail instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from bench.chromium import CHROMIUM_ARGS, chromium_path
from tests.e2e.harness import Api

SCREENSHOTS = Path(os.environ.get("SCHEDULER_SCREENSHOTS", Path(__file__).parents[2] / "build" / "screenshots"))


def chromium() -> str:
    path = chromium_path()
    if path is None:
        message = "no Chromium: install Debian's chromium package (apt-get install chromium)"
        if os.environ.get("SCHEDULER_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@asynccontextmanager
async def launched() -> AsyncIterator[Browser]:
    executable = chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def screenshot(page: Page, name: str) -> Path:
    """Saves the whole page as build/screenshots/<name>.png (or under SCHEDULER_SCREENSHOTS)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


# How long a browser test waits for what it expects on a page.
WAIT_MS = 20_000


@dataclass(frozen=True, slots=True)
class Session:
    """A browser page signed in to the dashboard at `base`, and the API client of the same account."""

    page: Page
    base: str
    api: Api


async def sign_in(page: Page, base: str, token: str) -> None:
    await page.goto(base + "/")
    await expect(page).to_have_url(re.compile(r"/ui/sign-in"))
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(base + "/ui")


@asynccontextmanager
async def signed_in_session(base: str, api: Api, token: str) -> AsyncIterator[Session]:
    """A desktop-sized page signed in with `token`."""
    async with launched() as browser:
        context = await browser.new_context(viewport={"width": 1280, "height": 860})
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)
        await sign_in(page, base, token)
        yield Session(page, base, api)
        await context.close()
