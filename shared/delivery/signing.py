"""Standard Webhooks signatures: `webhook-timestamp` and `webhook-signature` (v1, HMAC-SHA256) for a request whose
`webhook-id` is the occurrence id."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook


@functools.lru_cache(maxsize=4096)
def _signer(secret: str) -> Webhook:
    # Decoding a secret is per secret, not per request.
    return Webhook(secret)


def signature_headers(secrets: Sequence[str], message_id: str, at: datetime, body: str) -> dict[str, str]:
    """Headers signing `body` with every active secret (space-separated signatures, as the spec allows)."""
    return {
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(_signer(secret).sign(message_id, at, body) for secret in secrets),
    }
