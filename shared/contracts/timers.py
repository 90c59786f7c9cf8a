"""Durable timers: attempts due later (retries after a backoff), kept in a KV bucket until the ticker fires them."""

from __future__ import annotations

from datetime import datetime

import msgspec

from shared.contracts.executions import ExecutionRequested

# Timers may be set at most this far ahead: backoff caps (and Retry-After, at most a day) are bounded by it.
MAX_TIMER_DELAY_SECONDS = 7 * 86400


class RetryTimer(msgspec.Struct, frozen=True, kw_only=True):
    """Publish `request` at `due_at`. The key is the request's execution id, so writing it twice is harmless."""

    due_at: datetime
    request: ExecutionRequested
