"""Bodies of the operational endpoints: health and metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec


class Health(msgspec.Struct, kw_only=True):
    status: str
    service: str


ConnectionState = Literal["connected", "disconnected"]
TickerState = Literal["running", "stopped", "unknown"]


class HealthDetailed(msgspec.Struct, kw_only=True):
    """One key per real dependency. `scheduler_service` is the ticker, judged by its heartbeat."""

    status: Literal["healthy", "unhealthy"]
    service: str
    database: ConnectionState
    nats: ConnectionState
    scheduler_service: TickerState
    scheduler_heartbeat_at: datetime | None


class JobCounts(msgspec.Struct, kw_only=True):
    total: int
    enabled: int
    disabled: int


class ExecutionCounts(msgspec.Struct, kw_only=True):
    """Executions by status. success_rate is success over all executions, in percent, as the document computes it."""

    total: int
    queued: int
    running: int
    success: int
    failure: int
    timed_out: int
    dead_letter: int
    success_rate: float
    avg_duration_ms: float


class Metrics(msgspec.Struct, kw_only=True):
    """GET /metrics: counts over the caller's accounts."""

    timestamp: datetime
    jobs: JobCounts
    executions: ExecutionCounts
