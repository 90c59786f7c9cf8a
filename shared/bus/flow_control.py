"""Flow control per destination: the deliveries in flight and the rate window of each account's key, shared by every
dispatcher replica in one KV entry per key, changed by compare-and-set.

An entry holds the executions in flight (each with when its hold lapses: a dispatcher that dies without releasing
one frees it after the ack wait) and the current rate window (fixed windows of `period_seconds`, aligned to the
epoch) with how many deliveries started in it. A delivery takes a place (or is told how long to wait) with one read
and one write; a key at its limit costs one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared.bus.streams import kv_bucket
from shared.contracts.jobs import FlowControl
from shared.contracts.subjects import Names
from shared.settings import Settings

# Idle keys are forgotten after this long (longer than the longest rate period, a day).
FLOW_TTL_SECONDS = 2 * 86400.0
# A key at its parallelism is looked at again after about this long (the waiting consumer spaces later looks out).
PARALLELISM_RETRY_SECONDS = 0.25
# Writers racing on one key try this many times before the delivery waits a little instead.
MAX_WRITE_TRIES = 16


class _KeyState(msgspec.Struct, frozen=True, kw_only=True):
    """One key's entry: holders (execution id: when its hold lapses, Unix seconds) and the rate window."""

    holders: dict[str, float] = msgspec.field(default_factory=dict)
    window: float = 0.0
    started: int = 0


_decoder = msgspec.json.Decoder(_KeyState)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Permit:
    """A delivery may go. `holder` is set when it holds a place of the key's parallelism (released after it)."""

    key: str
    holder: str | None


@dataclass(frozen=True, slots=True)
class Wait:
    """The key is at a limit: look again after `seconds`."""

    seconds: float
    reason: Literal["parallelism", "rate"]


def decided(state: _KeyState, flow: FlowControl, holder: str, now: float, hold_for: float) -> _KeyState | Wait:
    """The key's entry once `holder` starts a delivery now, or how long it must wait (pure: the limiter writes it)."""
    holders = {h: lapses for h, lapses in state.holders.items() if lapses > now}
    again = holder in holders  # the same execution after a redelivery: it keeps its place
    if flow.parallelism is not None and not again and len(holders) >= flow.parallelism:
        return Wait(PARALLELISM_RETRY_SECONDS, "parallelism")
    window, started = state.window, state.started
    if flow.rate is not None and not again:
        current = now - now % flow.period_seconds
        if current != window:
            window, started = current, 0
        if started >= flow.rate:
            return Wait(max(window + flow.period_seconds - now, 0.001), "rate")
        started += 1
    if flow.parallelism is not None:
        holders[holder] = now + hold_for
    return _KeyState(holders=holders, window=window, started=started)


async def flow_bucket(js: JetStreamContext, settings: Settings) -> KeyValue:
    return await kv_bucket(js, settings, Names(settings.namespace).flow_bucket, ttl=FLOW_TTL_SECONDS)


class FlowLimiter:
    """Takes and gives back places under each key's limits. `hold_for`: how long a place is held without a refresh
    (the ack wait: as long as a dead dispatcher's messages take to come back)."""

    def __init__(self, kv: KeyValue, hold_for: float) -> None:
        self._kv = kv
        self._hold_for = hold_for

    @staticmethod
    def key_of(account_id: UUID, flow: FlowControl) -> str:
        return f"{account_id}.{flow.key}"

    async def acquire(self, account_id: UUID, flow: FlowControl, holder: str) -> Permit | Wait:
        key = self.key_of(account_id, flow)
        for _ in range(MAX_WRITE_TRIES):
            state, revision = await self._read(key)
            changed = decided(state, flow, holder, time.time(), self._hold_for)
            if isinstance(changed, Wait):
                return changed
            if await self._write(key, changed, revision):
                return Permit(key, holder if flow.parallelism is not None else None)
        return Wait(PARALLELISM_RETRY_SECONDS, "parallelism")  # too many writers at once: wait like a full key

    async def release(self, permit: Permit) -> None:
        """Give the place back (nothing to do for a delivery limited by rate alone)."""
        await self._change_holder(permit, None)

    async def refresh(self, permit: Permit) -> None:
        """Push the place's lapse back (for a delivery longer than `hold_for`)."""
        await self._change_holder(permit, time.time() + self._hold_for)

    @contextlib.asynccontextmanager
    async def held(self, permit: Permit, refresh_every: float) -> AsyncIterator[None]:
        """Hold the place while the block runs, refreshing it, and give it back after."""

        async def refreshing() -> None:
            while True:
                await asyncio.sleep(refresh_every)
                with contextlib.suppress(nats.errors.Error):
                    await self.refresh(permit)

        refresher = asyncio.create_task(refreshing()) if permit.holder is not None else None
        try:
            yield
        finally:
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
            with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
                await self.release(permit)  # else it lapses after `hold_for`

    async def _change_holder(self, permit: Permit, lapses: float | None) -> None:
        if permit.holder is None:
            return
        for _ in range(MAX_WRITE_TRIES):
            state, revision = await self._read(permit.key)
            if permit.holder not in state.holders:
                return
            holders = dict(state.holders)
            if lapses is None:
                del holders[permit.holder]
            else:
                holders[permit.holder] = lapses
            changed = msgspec.structs.replace(state, holders=holders)
            if await self._write(permit.key, changed, revision):
                return

    async def _read(self, key: str) -> tuple[_KeyState, int | None]:
        try:
            entry = await self._kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return _KeyState(), None
        state = _decoder.decode(entry.value) if entry.value else _KeyState()
        return state, entry.revision

    async def _write(self, key: str, state: _KeyState, revision: int | None) -> bool:
        try:
            if revision is None:
                await self._kv.create(key, _encoder.encode(state))
            else:
                await self._kv.update(key, _encoder.encode(state), last=revision)
        except KeyWrongLastSequenceError:
            return False
        return True
