"""Leases: exclusive, expiring claims in a NATS KV bucket whose entries live for the bucket's TTL.

A holder creates a key (fails if someone holds it), renews it well within the TTL by updating it at the revision
it last wrote (fails if the lease expired and someone else took it), and deletes it to hand it over at once.
A holder that dies stops renewing; the key expires and another can take it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from shared.bus.streams import kv_bucket
from shared.contracts.subjects import Names
from shared.settings import Settings

# A listing ends within this long (a TimeoutError, as a NATS request's would be): a ticker lists right after it
# renews, and the next renewal comes a third of the TTL after the listing ends, so with the default TTL (10 s) this
# keeps every renewal inside it. A listing normally takes milliseconds.
LISTING_SECONDS = 5.0
# The server removes a listing's consumer this long after the listing stops reading (if deleting it failed).
LISTING_CONSUMER_INACTIVE_SECONDS = 10.0


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
        """Keys of live leases (anyone's) starting with `prefix`: each key's last entry, read until the server says
        none is left to send.

        Not `KeyValue.keys()`: it decides that nothing is coming when the server has sent everything but the client
        has not received any of it yet, so on a loaded box it answered "no keys" while every lease was held (a
        ticker then counted itself alone, `scheduler status` showed no ticker). Here an empty bucket is one whose
        consumer had neither delivered nor pending messages when asked, and otherwise the listing reads on until a
        message comes with nothing pending after it. (A pull consumer made for the listing was tried first: on a
        three-server cluster its first requests were answered 503 while the new consumer was being set up.)"""
        # nats-py gives a bucket no public way to its stream, subject prefix and JetStream context.
        kv: Any = self._kv
        live: set[str] = set()
        async with asyncio.timeout(LISTING_SECONDS):
            sub = await kv._js.subscribe(
                f"{kv._pre}>", stream=kv._stream, ordered_consumer=True, headers_only=True,
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, inactive_threshold=LISTING_CONSUMER_INACTIVE_SECONDS,
            )  # fmt: skip
            consumer = ""
            try:
                info = await sub.consumer_info()
                consumer = info.name
                if (info.num_pending or 0) > 0 or (info.delivered.consumer_seq or 0) > 0:
                    while True:
                        msg = await sub.next_msg(timeout=LISTING_SECONDS)
                        key = msg.subject.removeprefix(kv._pre)
                        if (msg.headers or {}).get(KV_OP) in (KV_DEL, KV_PURGE):
                            live.discard(key)
                        else:
                            live.add(key)
                        if msg.metadata.num_pending == 0:
                            break
            finally:
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    await sub.unsubscribe()
                    if consumer:
                        await kv._js.delete_consumer(kv._stream, consumer)
        return sorted(k for k in live if k.startswith(prefix))

    async def owner(self, key: str) -> str | None:
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return entry.value.decode() if entry.value else None
