"""Headless Chromium for the dashboard's browser tests: Debian's `chromium` package, driven by Playwright.

Playwright's own browser downloads are not used (this machine's network refuses them): the tests launch the
system's Chromium, found at SCHEDULER_TEST_CHROMIUM or /usr/bin/chromium. Without one the tests are skipped, unless
SCHEDULER_REQUIRE_BROWSER is set (CI sets it), when they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from bench.chromium import CHROMIUM_ARGS, chromium_path

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
