"""Overlap policies: at most one run in flight per job target (a webhook, or the task), shared by every dispatcher
and worker through a KV bucket.

A claim is a key per target holding the occurrence id. Claims expire with the bucket's TTL, so a process killed
mid-run blocks nothing for longer than that; runs that may take longer refresh theirs. The same occurrence may take
over its own claim (a redelivery after a crash, or its next attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared.bus.streams import kv_bucket
from shared.contracts.executions import ExecutionRequested
from shared.contracts.subjects import Names
from shared.settings import Settings


class Deferred(Exception):
    """Hand the message back to run again after `seconds` (a queued run waiting for the one in flight)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"deferred for {seconds:g} s")
        self.seconds = seconds


@dataclass(frozen=True, slots=True)
class Claim:
    key: str
    value: bytes
    revision: int


async def running_bucket(js: JetStreamContext, settings: Settings) -> KeyValue:
    # Retimed: a store made when the ack wait was 150 s would otherwise hold a dead process's claims that long.
    return await kv_bucket(
        js, settings, Names(settings.namespace).running_bucket, ttl=settings.ack_wait_seconds, retimed=True
    )


class RunningRuns:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @staticmethod
    def key_of(request: ExecutionRequested) -> str:
        return f"{request.job_id}.{request.webhook.id if request.webhook is not None else 'task'}"

    async def claim(self, key: str, occurrence: str) -> Claim | None:
        """Take the key for `occurrence`; None if another occurrence holds it."""
        value = occurrence.encode()
        try:
            return Claim(key, value, await self._kv.create(key, value))
        except KeyWrongLastSequenceError:
            pass
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return await self.claim(key, occurrence)  # released (or expired) in between: try again
        if entry.value != value or entry.revision is None:
            return None
        try:
            return Claim(key, value, await self._kv.update(key, value, last=entry.revision))
        except KeyWrongLastSequenceError:
            return None

    async def holder(self, key: str) -> str | None:
        """The occurrence holding `key`, if any."""
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return entry.value.decode() if entry.value else None

    async def refresh(self, claim: Claim) -> Claim:
        """Restart the claim's TTL (for runs longer than it)."""
        return Claim(claim.key, claim.value, await self._kv.update(claim.key, claim.value, last=claim.revision))

    async def release(self, claim: Claim) -> None:
        """Drop the claim unless someone else took the key since (it expired and was claimed again)."""
        with contextlib.suppress(KeyWrongLastSequenceError, KeyNotFoundError, KeyDeletedError, nats.errors.Error):
            await self._kv.delete(claim.key, last=claim.revision)

    async def release_key(self, key: str, occurrence: str) -> None:
        """Drop `key` if `occurrence` holds it."""
        with contextlib.suppress(KeyNotFoundError, KeyDeletedError, nats.errors.Error):
            entry = await self._kv.get(key)
            if entry.value == occurrence.encode() and entry.revision is not None:
                with contextlib.suppress(KeyWrongLastSequenceError):
                    await self._kv.delete(key, last=entry.revision)


# How soon a run waiting behind another (queue_one) looks again.
QUEUED_RETRY_SECONDS = 1.0


async def under_overlap_policy(
    runs: RunningRuns,
    request: ExecutionRequested,
    run: Callable[[], Awaitable[None]],
    skipped: Callable[[str], Awaitable[None]],
    refresh_every: float,
) -> None:
    """Run `request` as its job's overlap policy says: now, not at all (`skipped` says why), or later (Deferred).

    Runs asked for by hand (execute now, re-drive) and retries of an occurrence that already ran are not held back:
    skipping a retry would end its occurrence with neither a result nor a dead letter.
    """
    if request.overlap == "allow" or request.manual or request.redrive or request.attempt > 1:
        await run()
        return
    key = RunningRuns.key_of(request)
    queued = f"{key}.queued"
    if request.overlap == "queue_one" and await runs.holder(queued) not in (None, request.occurrence_id):
        # One run already waits: it goes next, and this one does not wait behind it.
        await skipped("skipped by the overlap policy (queue_one): one run already waits behind the one in flight")
        return
    first = await runs.claim(key, request.occurrence_id)
    if first is None:
        if request.overlap == "queue_one":
            if await runs.claim(queued, request.occurrence_id) is not None:
                raise Deferred(QUEUED_RETRY_SECONDS)
            await skipped("skipped by the overlap policy (queue_one): one run already waits behind the one in flight")
        else:
            await skipped("skipped by the overlap policy (skip): the previous run was still in flight")
        return
    if request.overlap == "queue_one":
        await runs.release_key(queued, request.occurrence_id)
    claim = first

    async def keep_claim() -> None:
        nonlocal claim
        while True:
            await asyncio.sleep(refresh_every)
            with contextlib.suppress(nats.errors.Error, KeyWrongLastSequenceError):
                claim = await runs.refresh(claim)

    refresher = asyncio.create_task(keep_claim())
    try:
        await run()
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await runs.release(claim)
