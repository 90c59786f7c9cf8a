"""Leases: exclusive, expiring claims in a NATS KV bucket whose entries live for the bucket's TTL.

A holder creates a key (fails if someone holds it), renews it well within the TTL by updating it at the revision
it last wrote (fails if the lease expired and someone else took it), and deletes it to hand it over at once.
A holder that dies stops renewing; the key expires and another can take it.
"""

from __future__ import annotations

import contextlib

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from shared.bus.streams import kv_bucket
from shared.contracts.subjects import Names
from shared.settings import Settings


async def leases_bucket(js: JetStreamContext, settings: Settings) -> KeyValue:
    return await kv_bucket(js, settings, Names(settings.namespace).leases_bucket, ttl=settings.lease_ttl_seconds)


class Leases:
    """The leases one holder (a process) has taken, by key."""

    def __init__(self, kv: KeyValue, holder: str) -> None:
        self._kv = kv
        self.holder = holder
        self.held: dict[str, int] = {}

    async def acquire(self, key: str) -> bool:
        try:
            self.held[key] = await self._kv.create(key, self.holder.encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def take_over(self, key: str) -> None:
        """Take `key` whoever holds it (an operator's tool stopping a live holder): the holder's next renewal fails."""
        self.held[key] = await self._kv.put(key, self.holder.encode())

    async def renew(self, key: str) -> bool:
        """Keep `key`; False (and it is no longer held) if it was lost."""
        try:
            self.held[key] = await self._kv.update(key, self.holder.encode(), last=self.held[key])
        except (KeyWrongLastSequenceError, KeyNotFoundError, KeyDeletedError):
            self.held.pop(key, None)
            return False
        return True

    async def release(self, key: str) -> None:
        revision = self.held.pop(key, None)
        if revision is not None:
            with contextlib.suppress(KeyWrongLastSequenceError, KeyNotFoundError, KeyDeletedError, nats.errors.Error):
                await self._kv.delete(key, last=revision)

    async def release_all(self) -> None:
        for key in list(self.held):
            await self.release(key)

    async def keys(self, prefix: str) -> list[str]:
        """Keys of live leases (anyone's) starting with `prefix`."""
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        return [k for k in keys if k.startswith(prefix)]

    async def owner(self, key: str) -> str | None:
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return entry.value.decode() if entry.value else None
