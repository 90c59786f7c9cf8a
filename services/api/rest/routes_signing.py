"""An account's webhook signing secret (Standard Webhooks): read it, and rotate it with a grace period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from services.api.core.auth import Principal
from services.api.http.openapi_docs import BEARER, BODY, PROTECTED, error_responses
from shared.bus.signing_secrets import SigningSecretStore
from shared.contracts.signing import SigningSecrets

MAX_GRACE_SECONDS = 7 * 86400


class SigningSecretOut(msgspec.Struct, kw_only=True):
    """`secret` signs every request (`whsec_` + base64, as Standard Webhooks libraries take it); while a rotation's
    grace lasts, `previous_secret` signs too, until `previous_valid_until`."""

    account_id: UUID
    secret: str
    previous_secret: str | None
    previous_valid_until: datetime | None
    rotated_at: datetime


class RotateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    account_id: UUID
    grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=MAX_GRACE_SECONDS)] = 86400


def _out(account_id: UUID, secrets: SigningSecrets, now: datetime) -> SigningSecretOut:
    previous = secrets.previous if len(secrets.active(now)) > 1 else None
    return SigningSecretOut(
        account_id=account_id,
        secret=secrets.current,
        previous_secret=previous,
        previous_valid_until=secrets.previous_until if previous else None,
        rotated_at=secrets.rotated_at,
    )


class SigningSecretController(Controller):
    path = "/api/signing-secret"
    tags = ["signing"]
    security = BEARER

    @get("/", summary="The account's webhook signing secret", responses=error_responses(400, *PROTECTED))
    async def read(
        self,
        account_id: FromQuery[UUID],
        principal: NamedDependency[Principal],
        signing: NamedDependency[SigningSecretStore],
    ) -> SigningSecretOut:
        principal.check_account(account_id)
        now = datetime.now(UTC)
        return _out(account_id, await signing.get(account_id, now), now)

    @post(
        "/rotate",
        status_code=200,
        summary="Rotate the signing secret; the old one keeps signing for grace_seconds",
        responses=error_responses(*BODY, *PROTECTED),
    )
    async def rotate(
        self,
        data: JSONBody[RotateRequest],
        principal: NamedDependency[Principal],
        signing: NamedDependency[SigningSecretStore],
    ) -> SigningSecretOut:
        principal.check_account(data.account_id)
        now = datetime.now(UTC)
        rotated = await signing.rotate(data.account_id, timedelta(seconds=data.grace_seconds), now)
        return _out(data.account_id, rotated, now)
