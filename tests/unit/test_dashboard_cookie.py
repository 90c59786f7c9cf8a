"""How long the dashboard's token cookie lives: as long as the token, never longer (a browser keeps 400 days)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.api.ui.session import MAX_COOKIE_SECONDS, cookie_lifetime

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 4, 5, 30, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expires_at", "seconds"),
    [
        (NOW + timedelta(days=7), 7 * 86400),
        (NOW + timedelta(seconds=90, microseconds=500000), 90),  # never past the token's expiry
        (NOW - timedelta(seconds=5), 0),
        (NOW + timedelta(days=3 * 365), MAX_COOKIE_SECONDS),
        (None, MAX_COOKIE_SECONDS),  # a token expiring past year 9999
    ],
)
def test_the_cookie_lives_as_long_as_the_token(expires_at: datetime | None, seconds: int) -> None:
    assert cookie_lifetime(expires_at, NOW) == seconds
