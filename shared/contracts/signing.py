"""Per-account webhook signing secrets (Standard Webhooks), kept in a KV bucket keyed by account id."""

from __future__ import annotations

from datetime import datetime

import msgspec


class SigningSecrets(msgspec.Struct, frozen=True, kw_only=True):
    """`current` signs every request; during a rotation `previous` also signs until `previous_until`, so receivers
    can switch secrets without rejecting a request. Secrets are `whsec_` + base64 of 32 random bytes."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None
    rotated_at: datetime

    def active(self, now: datetime) -> list[str]:
        if self.previous is not None and self.previous_until is not None and now < self.previous_until:
            return [self.current, self.previous]
        return [self.current]
