"""The `Idempotency-Key` header of the create routes, as both API surfaces declare and read it."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request
from litestar.params import HeaderParameter

from services.api.core.idempotency import HEADER, MAX_KEY_LENGTH, RequestKey, request_key

IdempotencyKeyHeader = Annotated[
    str | None,
    HeaderParameter(
        name=HEADER,
        required=False,
        # Its form (1 to 255 printable ASCII characters) is checked by idempotency.checked_key, whose error names the
        # header as each surface names fields; Litestar's own checks would name the Python parameter.
        description=(
            f"Any unique string of 1 to {MAX_KEY_LENGTH} printable ASCII characters (a UUID is usual) that makes a"
            " retried create safe: a retry with the same key and the byte-for-byte same body answers the job the"
            " first request created (as it is now) instead of creating another; the same key with another body, or"
            " once its job is deleted, is a 409; while the first request's write is under way, a 503"
        ),
    ),
]


async def request_key_of(request: Request[Any, Any, Any], key: str | None, account_id: UUID) -> RequestKey | None:
    """The ids a keyed create uses (None: no key given), from the key and the request's body as sent."""
    return None if key is None else request_key(account_id, key, await request.body())
