"""The dashboard under /ui: server-rendered pages (Jinja and htmx, no build step), CSRF-protected forms, its own
error pages, and its static files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.datastructures import ResponseHeader
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from services.api.ui.errors import ui_exception_handlers
from services.api.ui.routes_backfills import BackfillsController
from services.api.ui.routes_executions import ExecutionsController
from services.api.ui.routes_job_form import JobFormController
from services.api.ui.routes_jobs import JobsController
from services.api.ui.routes_live import live
from services.api.ui.routes_overview import OverviewController
from services.api.ui.routes_session import SessionController
from services.api.ui.session import UI_PATH, csrf_config, provide_ui_principal
from services.api.ui.views import note_positions
from shared.settings import Settings

STATIC = Path(__file__).parent / "static"


async def root_to_dashboard(request: Request[Any, Any, Any]) -> Redirect | None:
    """The site's root is the dashboard (an app-level before-request hook: the OpenAPI router owns the path "/")."""
    if request.url.path == "/" and request.method in ("GET", "HEAD"):
        return Redirect(UI_PATH, status_code=302)
    return None


def ui_router(settings: Settings) -> Router:
    return Router(
        path=UI_PATH,
        route_handlers=[
            SessionController,
            OverviewController,
            JobsController,
            JobFormController,
            BackfillsController,
            ExecutionsController,
            live,
            create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False),
        ],
        dependencies={"principal": Provide(provide_ui_principal)},
        before_request=note_positions,
        middleware=[DefineMiddleware(CSRFMiddleware, config=csrf_config(settings))],
        exception_handlers=ui_exception_handlers(),
        # Not framed by other sites (clickjacking), no URLs leaked to other sites, no content sniffing.
        response_headers=[
            ResponseHeader(name="X-Frame-Options", value="DENY"),
            ResponseHeader(name="Referrer-Policy", value="same-origin"),
            ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
        ],
        include_in_schema=False,
    )
