"""Durable timers: attempts due later (retries after a backoff), kept in a KV bucket until the ticker fires them."""

from __future__ import annotations

from datetime import datetime

import msgspec

from shared.contracts.callbacks import CallbackRequested
from shared.contracts.executions import ExecutionRequested

# Timers may be set at most this far ahead: backoff caps (and Retry-After, at most a day) are bounded by it.
MAX_TIMER_DELAY_SECONDS = 7 * 86400


class RetryTimer(msgspec.Struct, frozen=True, kw_only=True):
    """Publish `request` at `due_at`: the next attempt of an execution, or the next try of a callback. The key is
    derived from what it publishes, so writing it twice is harmless."""

    due_at: datetime
    request: ExecutionRequested | CallbackRequested


def timer_name(request: ExecutionRequested | CallbackRequested) -> str:
    """What names a timer within its partition: the next attempt's execution id, or for a callback's next try the
    attempt's execution id, the callback's kind and the try's number (each try its own: the ticker deletes a fired
    timer after publishing it, and must not delete the next try's, written meanwhile)."""
    if isinstance(request, CallbackRequested):
        return f"{request.execution_id}.{request.kind}.{request.callback_attempt}"
    return str(request.execution_id)
