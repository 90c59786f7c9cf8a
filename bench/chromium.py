"""Headless Chromium as this project runs it: Debian's `chromium` package (Playwright cannot download its own
browsers on this network), for the dashboard's browser tests and benchmark."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# What Chromium needs to run headless as root on a closed network: without the background-networking flags it
# tries to reach Google's services and its connections are refused.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    """SCHEDULER_TEST_CHROMIUM, else `chromium` on the PATH, else /usr/bin/chromium; None if there is none."""
    path = os.environ.get("SCHEDULER_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if Path(path).exists() else None
