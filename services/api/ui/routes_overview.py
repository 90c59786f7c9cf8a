"""The overview: jobs by state, recent executions by outcome, success rate, dead letters, lateness, a rate chart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from services.api.core.auth import Principal
from services.api.ui.queries import OUTCOMES, overview
from services.api.ui.views import fragment, page


class OverviewController(Controller):
    path = "/"

    @get("/")
    async def index(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Template:
        stats = await overview(pool, principal.accounts, datetime.now(UTC))
        return page(request, "overview.html", principal, "overview", stats=stats, outcomes=OUTCOMES)

    @get("/overview/stats")
    async def stats(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Template:
        stats = await overview(pool, principal.accounts, datetime.now(UTC))
        return fragment(request, "_overview_stats.html", stats=stats, outcomes=OUTCOMES)
