"""The in-memory twin of `JetStreamSink`: what was written, in order, with JetStream's deduplication by message id.

It can be told to fail the next writes, as a NATS outage would, to show what the recorder does then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from shared.contracts.executions import SUBJECT_KINDS, ExecutionEvent, ExecutionRequested
from shared.contracts.timers import RetryTimer, timer_name


@dataclass(frozen=True, slots=True)
class Written:
    """One write that reached the sink: `what` is a subject kind, "timer" or "disable_webhook"; `key` the message
    id, the timer's execution id or the webhook id."""

    what: str
    key: str
    value: ExecutionEvent | RetryTimer | str


@dataclass
class InMemoryAttemptSink:
    """`written` keeps every write that took effect; `attempts` every call, failed or not (to see repeats)."""

    written: list[Written] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    failures_left: int = 0

    def fail_next(self, count: int) -> None:
        """The next `count` writes raise ConnectionError (an OSError, as a dropped NATS connection does)."""
        self.failures_left = count

    def _enter(self, key: str) -> None:
        self.attempts.append(key)
        if self.failures_left > 0:
            self.failures_left -= 1
            raise ConnectionError("the in-memory sink is down")

    async def publish(self, kind: str, event: ExecutionEvent, msg_id: str) -> None:
        if kind not in SUBJECT_KINDS[type(event)]:
            raise ValueError(f"{type(event).__name__} is not published under {kind!r} (see SUBJECT_KINDS)")
        self._enter(msg_id)
        if all(w.key != msg_id for w in self.written if w.what not in ("timer", "disable_webhook")):
            self.written.append(Written(kind, msg_id, event))  # a repeated id is dropped, as JetStream drops it

    async def put_timer(self, timer: RetryTimer) -> None:
        key = timer_name(timer.request)
        self._enter(key)
        kept = Written("timer", key, timer)
        at = next((i for i, w in enumerate(self.written) if (w.what, w.key) == ("timer", key)), None)
        if at is None:
            self.written.append(kept)
        else:
            self.written[at] = kept  # a put overwrites the key's value

    async def disable_webhook(self, request: ExecutionRequested, webhook_id: UUID, reason: str, now: datetime) -> None:
        self._enter(str(webhook_id))
        if all((w.what, w.key) != ("disable_webhook", str(webhook_id)) for w in self.written):
            self.written.append(Written("disable_webhook", str(webhook_id), reason))  # already off: nothing changes

    @property
    def kinds(self) -> list[str]:
        """What was written, in order: subject kinds, "timer", "disable_webhook"."""
        return [w.what for w in self.written]
