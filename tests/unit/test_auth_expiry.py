"""A token's expiry as the principal carries it (the dashboard ends a page's event stream then)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import jwt
import pytest

from services.api.core.auth import Authenticator
from shared.settings import load_settings

pytestmark = pytest.mark.unit

SECRET = "s" * 40


def token(exp: int) -> str:
    claims = {"sub": "u", "aud": "authenticated", "exp": exp, "account_ids": [str(uuid.uuid4())]}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def authenticator() -> Authenticator:
    return Authenticator(
        load_settings({"SUPABASE_JWT_SECRET": SECRET, "NATS_URL": "nats://x:1", "DATABASE_URL": "postgresql://x/y"})
    )


def test_the_principal_carries_the_tokens_expiry() -> None:
    exp = int(time.time()) + 600
    principal = authenticator().authenticate(f"Bearer {token(exp)}")
    assert principal.expires_at == datetime.fromtimestamp(exp, UTC)


@pytest.mark.parametrize("exp", [253402300800, 10**13])  # year 10000; milliseconds written as seconds
def test_a_token_that_expires_beyond_year_9999_is_still_accepted(exp: int) -> None:
    principal = authenticator().authenticate(f"Bearer {token(exp)}")
    assert principal.accounts and principal.expires_at is None
