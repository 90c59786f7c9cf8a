"""The wait before the next attempt: the job's retry policy, or the receiver's Retry-After when it gives one."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from uuid import UUID

from shared.contracts.jobs import RetryPolicy

# A receiver cannot push a retry further out than this with Retry-After.
MAX_RETRY_AFTER_SECONDS = 86400.0


def backoff_seconds(policy: RetryPolicy, failed_attempt: int, seed: UUID) -> float:
    """Delay before attempt `failed_attempt + 1`: base * 2^(n-1), base * n or base, capped, then jittered.

    The jitter is drawn from the failed attempt's id, so recording the same failure twice gives the same delay.
    """
    base = policy.base_delay_seconds
    if policy.backoff == "exponential":
        delay = base * 2 ** (failed_attempt - 1)
    elif policy.backoff == "linear":
        delay = base * failed_attempt
    else:
        delay = base
    delay = min(delay, policy.max_delay_seconds)
    if policy.jitter:
        delay *= 1 + random.Random(seed.int).uniform(-policy.jitter, policy.jitter)  # noqa: S311 - not for secrets
    return max(float(delay), 0.0)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Parse a Retry-After header (delta seconds or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return min(max((at - now).total_seconds(), 0.0), MAX_RETRY_AFTER_SECONDS)
