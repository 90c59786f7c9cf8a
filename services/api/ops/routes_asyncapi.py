"""The AsyncAPI document of the event streams (no token needed: it describes contracts, not data)."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.datastructures import State

from services.api.http.dependencies import runtime_of
from services.api.ops.asyncapi import asyncapi_document


@get(
    "/asyncapi.json",
    summary="AsyncAPI 3.0 document of the job and execution events on NATS",
    description="Generated from the event contracts: one channel per subject pattern (namespace, account and job are"
    " parameters), one message per event type with its JSON Schema payload. Subscribe with it instead of reading"
    " the code.",
    tags=["events"],
    security=[],
)
async def asyncapi_json(state: State) -> dict[str, Any]:
    return asyncapi_document(runtime_of(state).settings)
