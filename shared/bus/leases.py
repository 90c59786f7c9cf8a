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
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from shared.bus.ordered_reader import OrderedReader
from shared.bus.streams import kv_bucket
from shared.contracts.subjects import Names
from shared.settings import Settings

# A listing reads the bucket's entries in requests of this many (a lease each: tickers' partitions and members,
# projectors), and ends when the next has not come within LISTING_WAIT_SECONDS (an entry that expired after it was
# counted never comes). Making its consumer may take up to LISTING_START_SECONDS (a TimeoutError, as a NATS request's
# would be): a ticker lists between renewals, so a listing must not hang for a lease's lifetime.
LISTING_BATCH = 1000
LISTING_WAIT_SECONDS = 5.0
LISTING_START_SECONDS = 10.0


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
        """Keys of live leases (anyone's) starting with `prefix`: each key's last entry, read to the end of what the
        bucket held when asked.

        Not `KeyValue.keys()`: it decides that nothing is coming when the server has sent everything but the client
        has not received any of it yet, so on a loaded box it answered "no keys" while every lease was held (a
        ticker then counted itself alone, `scheduler status` showed no ticker)."""
        # nats-py gives a bucket no public way to its stream, subject prefix and JetStream context.
        kv: Any = self._kv
        async with asyncio.timeout(LISTING_START_SECONDS):
            reader = await OrderedReader(buffer_limit=LISTING_BATCH).subscribe(
                kv._js, f"{kv._pre}>", kv._stream, config=ConsumerConfig(headers_only=True),
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            )  # fmt: skip
        live: set[str] = set()
        try:
            left = reader.pending_at_start
            while left > 0:
                # An entry that expired after the count was taken never comes: the wait ends the listing.
                batch = await reader.batch(min(left, LISTING_BATCH), LISTING_WAIT_SECONDS)
                if not batch:
                    break
                for msg in batch:
                    key = msg.subject.removeprefix(kv._pre)
                    if (msg.headers or {}).get(KV_OP) in (KV_DEL, KV_PURGE):
                        live.discard(key)
                    else:
                        live.add(key)
                left -= len(batch)
        finally:
            await reader.close()
        return sorted(k for k in live if k.startswith(prefix))

    async def owner(self, key: str) -> str | None:
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return entry.value.decode() if entry.value else None
