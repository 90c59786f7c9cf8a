"""The banner `scheduler dev` prints: what it says about where webhooks may point."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from scheduler.dev import DEV_EGRESS_ALLOW, _banner
from shared.settings import load_settings

pytestmark = pytest.mark.unit


def _webhooks_line(egress_allow: str) -> str:
    settings = load_settings({}, jwt_secret="s" * 32, egress_allow=egress_allow)
    text = _banner(settings, Path("/data"), uuid.uuid4(), [], token="t")
    return next(line for line in text.splitlines() if line.strip().startswith("webhooks"))


def test_the_banner_says_loopback_is_allowed_only_when_it_is() -> None:
    assert "loopback allowed" in _webhooks_line(DEV_EGRESS_ALLOW)
    line = _webhooks_line("hooks.internal")
    assert "hooks.internal" in line and "loopback allowed" not in line, line
    assert "loopback" in _webhooks_line("10.0.0.0/8") and "refused" in _webhooks_line("10.0.0.0/8")
