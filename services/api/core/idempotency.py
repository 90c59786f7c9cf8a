"""Idempotency keys on creates: a client that did not hear the answer (a timeout, a dropped connection, a 503 after
the event store's ack was lost) retries with the same `Idempotency-Key` header and gets the job the first request
created, never a second one.

No table of keys is kept: the key gives the new job's id, and the key with the request's body gives the id of the
event that creates it (the event's Nats-Msg-Id). A retry is then the same append: JetStream drops it as a
duplicate inside the stream's duplicate window, and after the window the job's subject already exists; either
way the job's first event says whether that same request created it.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from uuid import UUID

from services.api.core.api_errors import ValidationFailedError

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_KEY = re.compile(rf"[ -~]{{1,{MAX_KEY_LENGTH}}}")  # printable ASCII
# Fixed forever: changing it would make every key given before the change create a second job.
_NAMESPACE = UUID("6f1d6c52-3b9e-4d0a-9a57-1c2b8e5f7d31")


@dataclass(frozen=True, slots=True)
class RequestKey:
    """The ids a keyed create uses: the same key gives the same job, the same key and body the same event."""

    job_id: UUID
    event_id: UUID


def checked_key(raw: str) -> str:
    """The key as given, or a ValidationFailedError: 1 to 255 printable ASCII characters (as the IETF draft's
    examples and Stripe's keys are; a UUID is the usual choice)."""
    if _KEY.fullmatch(raw) is None:
        raise ValidationFailedError(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters", field=HEADER, location="header"
        )
    return raw


def request_key(account_id: UUID, raw: str, body: bytes) -> RequestKey:
    """The ids of the create that `raw` names in `account_id`; keys of different accounts never meet."""
    key = checked_key(raw)
    fingerprint = hashlib.sha256(body).hexdigest()
    return RequestKey(
        job_id=uuid.uuid5(_NAMESPACE, f"job:{account_id}:{key}"),
        event_id=uuid.uuid5(_NAMESPACE, f"create:{account_id}:{key}:{fingerprint}"),
    )
