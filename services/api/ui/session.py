"""Who is using the dashboard: the token pasted at sign-in, kept in a cookie and checked on every request exactly as
the API checks a bearer token, so the dashboard has that token's accounts and rights and no more."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State

from services.api.core.api_errors import UnauthorizedError
from services.api.core.auth import Principal
from services.api.http.dependencies import services_of
from shared.settings import Settings

TOKEN_COOKIE = "scheduler_ui_token"  # noqa: S105 - a cookie name, not a secret
CSRF_COOKIE = "scheduler_ui_csrf"
UI_PATH = "/ui"
# Browsers keep a cookie at most 400 days (RFC 6265bis); a token living longer is signed in again then.
MAX_COOKIE_SECONDS = 400 * 86400


class SignInRequiredError(Exception):
    """No usable token: the dashboard sends the browser to the sign-in page, with a code saying why (the page
    shows a fixed message per code, never text from the URL)."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "sign in")
        self.reason = reason


SIGN_IN_REASONS = {
    "expired": "Your token has expired: sign in with a new one.",
    "refused": "Your token was refused: sign in with a valid one.",
}


def cookie_lifetime(expires_at: datetime | None, now: datetime) -> int:
    """Seconds the token cookie lives: until the token expires (a token with no expiry the api can note, past year
    9999, gets the longest a browser keeps), so a browser never sends a token the api will refuse as expired."""
    if expires_at is None:
        return MAX_COOKIE_SECONDS
    return max(0, min(MAX_COOKIE_SECONDS, int((expires_at - now).total_seconds())))


def csrf_config(settings: Settings) -> CSRFConfig:
    """Double-submit tokens (a cookie and a form field or header) signed with a key derived from the JWT secret,
    so every api replica accepts the others' tokens; open mode, which has no secret, uses one per process."""
    if settings.jwt_secret:
        secret = settings.jwt_secret.get_secret_value().encode()
        key = hmac.new(secret, b"scheduler-ui-csrf", hashlib.sha256).hexdigest()
    else:
        key = secrets.token_hex(32)
    return CSRFConfig(
        secret=key,
        cookie_name=CSRF_COOKIE,
        cookie_path=UI_PATH,
        cookie_samesite="strict",
        cookie_httponly=False,
        header_name="x-csrftoken",
    )


def open_mode(request: Request[Any, Any, State]) -> bool:
    return services_of(request.app.state).settings.auth_mode == "open"


async def provide_ui_principal(request: Request[Any, Any, State]) -> Principal:
    """The signed-in principal; SignInRequiredError when there is no valid token (open mode needs none)."""
    authenticator = services_of(request.app.state).authenticator
    if open_mode(request):
        return authenticator.authenticate(None)
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        raise SignInRequiredError()
    try:
        return authenticator.authenticate(f"Bearer {token}")
    except UnauthorizedError as exc:
        raise SignInRequiredError("expired" if "expired" in exc.detail else "refused") from None
