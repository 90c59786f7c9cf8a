"""Flow control at the dispatcher: a webhook delivery of a job with `flow_control` goes only while its key is under
its limits; otherwise it waits on the waiting consumer (never on the requested one, whose max ack pending it would
fill, stalling every other account's deliveries).

A request that finds its key at a limit is published as ExecutionWaiting (once per execution) and acked; the waiting
consumer takes it and looks at the key again. Still full, it waits here up to WAIT_HERE_SECONDS, in line (first come,
first served) for a place this process gives back, and is handed back with a delay (a `Deferred`) if none comes: the
delay grows with each look (at most MAX_LOOK_SECONDS) for a key at its parallelism, and is the rest of the window for
a key at its rate. Handing back keeps one key's waiting deliveries from holding the waiting consumer's slots, so
other keys' get their turns. A dispatcher that dies with waiting deliveries in hand loses none: they are unacked and
come back after the ack wait. A redelivered request of a flow-controlled job is always sent to wait, so one published
to wait before a crash never also runs from the requested consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from nats.aio.msg import Msg

from shared.attempts.recorder import AttemptRecorder
from shared.bus.flow_control import FlowLimiter, Permit, Wait
from shared.bus.overlap import Deferred
from shared.contracts.executions import ExecutionRequested, ExecutionWaiting, envelope_of
from shared.contracts.jobs import FlowControl
from shared.observability.metrics import FLOW_WAITS

# The longest a waiting delivery goes between two looks at a key at its parallelism.
MAX_LOOK_SECONDS = 2.0
# How long a waiting delivery waits in this process for a place to be given back before it is handed back.
WAIT_HERE_SECONDS = 1.0


class FlowGate:
    def __init__(self, limiter: FlowLimiter, recorder: AttemptRecorder, refresh_every: float) -> None:
        self._limiter = limiter
        self._recorder = recorder
        self._refresh_every = refresh_every
        # By key: the deliveries of this process waiting for a place there, first come first.
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}

    async def run(
        self, request: ExecutionRequested, msg: Msg, waited: bool, deliver: Callable[[], Awaitable[None]]
    ) -> None:
        """Deliver `request` (`deliver`) under its job's flow control. `waited`: it came from the waiting consumer."""
        flow = request.flow_control
        if flow is None:
            await deliver()
            return
        if not waited and msg.metadata.num_delivered > 1:
            await self._wait(request, flow.key, "redelivered")
            return
        outcome = await self._limiter.acquire(request.account_id, flow, str(request.execution_id))
        if isinstance(outcome, Wait):
            FLOW_WAITS.labels(outcome.reason).inc()
            if not waited:
                await self._wait(request, flow.key, outcome.reason)
                return
            outcome = await self._wait_here(request, flow, outcome)
            if isinstance(outcome, Wait):
                raise Deferred(self._look_again_in(outcome, msg))
        try:
            async with self._limiter.held(outcome, self._refresh_every):
                await deliver()
        finally:
            self._wake(outcome.key)

    async def _wait_here(self, request: ExecutionRequested, flow: FlowControl, wait: Wait) -> Permit | Wait:
        """Wait in line for a place this process gives back (or a rate window to end), up to WAIT_HERE_SECONDS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_HERE_SECONDS
        key = FlowLimiter.key_of(request.account_id, flow)
        line = self._waiters.setdefault(key, deque())
        try:
            while (remaining := deadline - loop.time()) > 0:
                turn: asyncio.Future[None] = loop.create_future()
                line.append(turn)
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            turn, min(remaining, wait.seconds) if wait.reason == "rate" else remaining
                        )
                finally:
                    with contextlib.suppress(ValueError):
                        line.remove(turn)
                outcome = await self._limiter.acquire(request.account_id, flow, str(request.execution_id))
                if isinstance(outcome, Permit):
                    return outcome
                wait = outcome
            return wait
        finally:
            if not line:
                self._waiters.pop(key, None)

    def _wake(self, key: str) -> None:
        """A place of `key` was given back: the first delivery of this process waiting for one looks again."""
        line = self._waiters.get(key)
        while line:
            turn = line.popleft()
            if not turn.done():
                turn.set_result(None)
                return

    async def _wait(self, request: ExecutionRequested, key: str, reason: str) -> None:
        event = ExecutionWaiting(
            **envelope_of(request), occurred_at=datetime.now(UTC), key=key, reason=reason, request=request
        )
        await self._recorder.waiting(event)

    @staticmethod
    def _look_again_in(wait: Wait, msg: Msg) -> float:
        if wait.reason == "rate":
            return wait.seconds
        return min(wait.seconds * (msg.metadata.num_delivered or 1), MAX_LOOK_SECONDS)
