"""Reading, creating and rotating accounts' signing secrets in the `<ns>_signing` KV bucket."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from datetime import datetime, timedelta
from uuid import UUID

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared.bus.streams import kv_bucket
from shared.contracts.signing import SigningSecrets
from shared.contracts.subjects import Names
from shared.settings import Settings

_decoder = msgspec.json.Decoder(SigningSecrets)
# How long a process trusts what it read before reading again (a rotation reaches every dispatcher within this).
CACHE_SECONDS = 5.0


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def signing_bucket(js: JetStreamContext, settings: Settings) -> KeyValue:
    return await kv_bucket(js, settings, Names(settings.namespace).signing_bucket)


class SigningSecretStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._cache: dict[UUID, tuple[float, SigningSecrets]] = {}
        self._loading: dict[UUID, asyncio.Future[SigningSecrets]] = {}

    async def get(self, account_id: UUID, now: datetime) -> SigningSecrets:
        """The account's secrets, created on first use (several creators agree: the first write wins). Callers that
        find the cache stale together share one read: a busy second's deliveries to one account would otherwise
        each read the bucket (up to the dispatcher's concurrency at once, every CACHE_SECONDS)."""
        cached = self._cache.get(account_id)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        loading = self._loading.get(account_id)
        if loading is None:
            loading = self._loading[account_id] = asyncio.ensure_future(self._load(account_id, now))
            loading.add_done_callback(lambda _: self._loading.pop(account_id, None))
        # Shielded: one caller cancelled (its delivery timed out) does not cancel the others' read.
        return await asyncio.shield(loading)

    async def _load(self, account_id: UUID, now: datetime) -> SigningSecrets:
        found = await self._read(account_id)
        if found is None:
            created = SigningSecrets(current=new_secret(), rotated_at=now)
            try:
                await self._kv.create(str(account_id), msgspec.json.encode(created))
                current = created
            except KeyWrongLastSequenceError:
                found = await self._read(account_id)
                if found is None:  # created by another, then deleted before this read: nothing to agree on
                    gone = f"the signing secrets of account {account_id} vanished as they were created"
                    raise RuntimeError(gone) from None
                current = found[0]
        else:
            current = found[0]
        self._cache[account_id] = (time.monotonic(), current)
        return current

    async def rotate(self, account_id: UUID, grace: timedelta, now: datetime) -> SigningSecrets:
        """A new current secret; the old one keeps signing for `grace`."""
        for _ in range(5):
            found = await self._read(account_id)
            if found is None:
                await self.get(account_id, now)
                continue
            old, revision = found
            keep = grace.total_seconds() > 0
            rotated = SigningSecrets(
                current=new_secret(),
                previous=old.current if keep else None,
                previous_until=now + grace if keep else None,
                rotated_at=now,
            )
            try:
                await self._kv.update(str(account_id), msgspec.json.encode(rotated), last=revision)
            except KeyWrongLastSequenceError:
                continue
            self._cache[account_id] = (time.monotonic(), rotated)
            return rotated
        raise RuntimeError(f"the signing secrets of account {account_id} kept changing")

    async def _read(self, account_id: UUID) -> tuple[SigningSecrets, int] | None:
        """The secrets and their revision (for a compare-and-set update)."""
        try:
            entry = await self._kv.get(str(account_id))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if entry.value is None or entry.revision is None:
            return None
        return _decoder.decode(entry.value), entry.revision
