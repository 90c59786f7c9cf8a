"""GET /metrics: counts over the caller's accounts, as the documented JSON or as Prometheus text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import QueryParameter
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.api.core.auth import Principal
from services.api.core.stats import AccountStats, account_stats, counter_totals
from services.api.http.openapi_docs import BEARER, PROTECTED, error_responses
from services.api.ops.schemas import ExecutionCounts, JobCounts, Metrics

_PROMETHEUS_TYPES = ("text/plain", "application/openmetrics-text")
# The classic text format, which generate_latest writes by default (prometheus_client's own negotiation answers it
# with this type) and every Prometheus reads. Litestar appends the charset to a text/* media type itself: given the
# whole type it would send `charset` twice, which Go's MIME parser (Prometheus's) refuses.
PROMETHEUS_TEXT = CONTENT_TYPE_PLAIN_0_0_4
_PROMETHEUS_MEDIA_TYPE = PROMETHEUS_TEXT.removesuffix("; charset=utf-8")


class _AccountCollector(Collector):
    """Prometheus view of per-account counts, computed before rendering (collect() cannot await)."""

    def __init__(self, stats: list[AccountStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("scheduler_jobs", "Jobs by state", labels=["account_id", "state"])
        runs = GaugeMetricFamily(
            "scheduler_executions", "Execution records by current status", labels=["account_id", "status"]
        )
        ms_sum = GaugeMetricFamily(
            "scheduler_execution_duration_ms_sum", "Sum of finished executions' durations", labels=["account_id"]
        )
        ms_count = GaugeMetricFamily(
            "scheduler_execution_duration_ms_count", "Executions with a duration", labels=["account_id"]
        )
        for s in self._stats:
            account = str(s.account_id)
            jobs.add_metric([account, "enabled"], s.jobs_enabled)
            jobs.add_metric([account, "disabled"], s.jobs_total - s.jobs_enabled)
            for status, count in sorted(s.executions.items()):
                runs.add_metric([account, status], count)
            ms_sum.add_metric([account], s.duration_ms_sum)
            ms_count.add_metric([account], s.durations)
        yield from (jobs, runs, ms_sum, ms_count)


def _wants_prometheus(request: Request[object, object, State], fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "prometheus"
    best = request.accept.best_match(["application/json", *_PROMETHEUS_TYPES], default="application/json")
    return best in _PROMETHEUS_TYPES


async def metrics(pool: asyncpg.Pool, accounts: frozenset[UUID] | None, now: datetime) -> Metrics:
    """Counts over `accounts` (None: every account), from the counters the projector's triggers keep."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        totals = await counter_totals(conn, accounts)
    total, success = totals.executions, totals.count("success")
    return Metrics(
        timestamp=now,
        jobs=JobCounts(
            total=totals.jobs_total, enabled=totals.jobs_enabled, disabled=totals.jobs_total - totals.jobs_enabled
        ),
        executions=ExecutionCounts(
            total=total,
            queued=totals.count("queued"),
            running=totals.count("running"),
            success=success,
            failure=totals.count("failure"),
            timed_out=totals.count("timed_out"),
            dead_letter=totals.count("dead_letter"),
            success_rate=round(100.0 * success / total, 2) if total else 0.0,
            avg_duration_ms=round(totals.average_duration_ms, 2),
        ),
    )


@dataclass
class _JsonOrPrometheus(Operation):
    """The 200 answer is JSON or, on request, Prometheus text: the OpenAPI document lists both."""

    def __post_init__(self) -> None:
        ok = self.responses.get("200") if self.responses else None
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content[PROMETHEUS_TEXT] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


@get(
    "/metrics",
    operation_class=_JsonOrPrometheus,
    summary="Job and execution counts over the caller's accounts (JSON, or Prometheus text)",
    description=(
        "JSON by default. Prometheus text exposition format (per-account gauges) when the Accept header prefers"
        " text/plain or application/openmetrics-text, as Prometheus's scraper does, or with ?format=prometheus."
    ),
    tags=["metrics"],
    security=BEARER,
    responses={
        200: ResponseSpec(data_container=Metrics, description="Counts over the caller's accounts"),
        **error_responses(400, *PROTECTED),
    },
)
async def metrics_endpoint(
    request: Request[object, object, State],
    principal: NamedDependency[Principal],
    pool: NamedDependency[asyncpg.Pool],
    format: Annotated[
        Literal["json", "prometheus"] | None, QueryParameter(description="Force a format instead of using Accept")
    ] = None,
) -> Response[Any]:
    if _wants_prometheus(request, format):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_AccountCollector(await account_stats(pool, principal.accounts)))
        return Response(generate_latest(registry), media_type=_PROMETHEUS_MEDIA_TYPE)
    return Response(await metrics(pool, principal.accounts, datetime.now(UTC)))
