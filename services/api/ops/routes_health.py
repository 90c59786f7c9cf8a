"""Health of the api and of what it depends on (no token needed)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from services.api.http.dependencies import ApiServices, runtime_of
from services.api.ops.schemas import ConnectionState, Health, HealthDetailed, TickerState
from shared.bus.heartbeat import latest_heartbeat
from shared.contracts.ticker import HEARTBEAT_STALE_SECONDS, Heartbeat

# A health check must answer quickly even when a dependency hangs.
CHECK_TIMEOUT_SECONDS = 2.0


@get("/health", summary="Liveness of the api", tags=["health"], security=[])
async def health() -> Health:
    return Health(status="healthy", service="scheduler")


async def _database(services: ApiServices | None) -> ConnectionState:
    if services is None:
        return "disconnected"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await services.pool.fetchval("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means the database cannot serve queries
        return "disconnected"
    return "connected"


async def _nats(services: ApiServices | None) -> ConnectionState:
    if services is None or not services.nc.is_connected:
        return "disconnected"
    try:
        await services.nc.flush(timeout=int(CHECK_TIMEOUT_SECONDS))
    except Exception:  # noqa: BLE001 - no round trip means no event store
        return "disconnected"
    return "connected"


async def _ticker(services: ApiServices | None) -> Heartbeat | None:
    if services is None:
        return None
    with contextlib.suppress(Exception):  # unreadable for any reason: not ready
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await latest_heartbeat(services.ticker_kv)
    return None


@get(
    "/health/detailed",
    summary="Readiness: database, NATS and the ticker's heartbeat; 503 when any is down",
    tags=["health"],
    security=[],
    responses={503: ResponseSpec(data_container=HealthDetailed, description="Something is down; the keys say what")},
)
async def health_detailed(state: State) -> Response[HealthDetailed]:
    services = runtime_of(state).started  # before the api has connected: everything is down
    database, nats, beat = await asyncio.gather(_database(services), _nats(services), _ticker(services))
    ticker: TickerState
    if beat is not None:
        age = (datetime.now(UTC) - beat.at).total_seconds()
        ticker = "running" if age <= HEARTBEAT_STALE_SECONDS else "stopped"
    else:
        ticker = "unknown" if nats == "disconnected" else "stopped"
    healthy = database == "connected" and nats == "connected" and ticker == "running"
    body = HealthDetailed(
        status="healthy" if healthy else "unhealthy",
        service="scheduler",
        database=database,
        nats=nats,
        scheduler_service=ticker,
        scheduler_heartbeat_at=beat.at if beat else None,
    )
    return Response(body, status_code=200 if healthy else 503)
