"""Health of the api process (no token needed)."""

from __future__ import annotations

from litestar import get

from services.api.schemas import Health


@get("/health", summary="Liveness", tags=["health"])
async def health() -> Health:
    return Health(status="healthy", service="scheduler")
