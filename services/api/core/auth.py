"""Who is calling: HS256 JWTs checked locally, or the explicit open mode for local use."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import jwt

from services.api.core.api_errors import ForbiddenError, UnauthorizedError
from shared.settings import Settings

OPEN_MODE_ACCOUNT = UUID("00000000-0000-0000-0000-000000000001")
LEEWAY_SECONDS = 30


# Access tokens are about a kilobyte; a far larger one is refused before any parsing.
MAX_TOKEN_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller. `accounts` is None for a service-role caller, who may act on every account."""

    subject: str
    accounts: frozenset[UUID] | None
    expires_at: datetime | None = None  # the token's `exp` (None in open mode)

    def check_account(self, account_id: UUID) -> None:
        if self.accounts is not None and account_id not in self.accounts:
            raise ForbiddenError("you do not have access to this account")


def _accounts(claims: dict[str, Any]) -> frozenset[UUID]:
    found: list[Any] = []
    for source in (claims, claims.get("app_metadata") or {}):
        if isinstance(source, dict):
            if isinstance(source.get("account_ids"), list):
                found.extend(source["account_ids"])
            if source.get("account_id"):
                found.append(source["account_id"])
    accounts = set()
    for value in found:
        try:
            accounts.add(UUID(str(value)))
        except ValueError:
            continue
    return frozenset(accounts)


class Authenticator:
    """Turns an Authorization header into a Principal, or raises UnauthorizedError."""

    def __init__(self, settings: Settings) -> None:
        self._open = settings.auth_mode == "open"
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret is not None else None
        self._audience = settings.jwt_audience
        if not self._open and not self._secret:
            raise ValueError(
                "SUPABASE_JWT_SECRET is not set: the api cannot check tokens (or set SCHEDULER_AUTH_MODE=open)"
            )

    def authenticate(self, authorization: str | None) -> Principal:
        if self._open:
            return Principal(subject="open-mode", accounts=frozenset({OPEN_MODE_ACCOUNT}))
        if not authorization:
            raise UnauthorizedError("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("the Authorization header must be 'Bearer <token>'")
        if len(token) > MAX_TOKEN_BYTES:
            raise UnauthorizedError(f"token too large (more than {MAX_TOKEN_BYTES} bytes)")
        if self._secret is None:  # refused in __init__ unless open mode, answered above
            raise UnauthorizedError("the api has no secret to check tokens with")
        try:
            claims = jwt.decode(
                token.strip(),
                self._secret,
                algorithms=["HS256"],
                audience=self._audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthorizedError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"invalid token: {exc}") from exc
        subject = str(claims.get("sub"))
        try:
            expires_at: datetime | None = datetime.fromtimestamp(claims["exp"], UTC)
        except (ValueError, OverflowError, OSError):  # past year 9999 (a "never expires" token): no end to note
            expires_at = None
        if claims.get("role") == "service_role":
            return Principal(subject=subject, accounts=None, expires_at=expires_at)
        return Principal(subject=subject, accounts=_accounts(claims), expires_at=expires_at)


def mint_token(
    secret: str,
    *,
    accounts: list[UUID],
    audience: str = "authenticated",
    ttl_seconds: int = 86400,
    service_role: bool = False,
) -> str:
    """A token this api accepts; used by `scheduler token` and `scheduler dev` for local clients."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "role": "service_role" if service_role else "authenticated",
        "account_ids": [str(a) for a in accounts],
    }
    return jwt.encode(claims, secret, algorithm="HS256")
