"""The one place where the dashboard's exceptions become pages: the API's own messages, in HTML, with its status
codes; a missing or expired token sends the browser to sign in."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException, ValidationException
from litestar.response import Redirect, Template

from services.api.core.errors import ErrorAnswer, sentence
from services.api.http.error_responses import Handlers, exception_handlers
from services.api.ui.session import UI_PATH, SignInRequiredError

log = logging.getLogger(__name__)


def _page(request: Request[Any, Any, Any], status: int, title: str, detail: str) -> Response[Any]:
    # A fragment request (htmx) gets the message alone, shown where the fragment would have gone.
    name = "_error.html" if request.headers.get("hx-request") else "error.html"
    return Template(
        template_name=name,
        context={"title": title, "detail": detail, "status": status, "request": request},
        status_code=status,
        media_type=MediaType.HTML,
    )


def _sign_in(request: Request[Any, Any, Any], exc: SignInRequiredError) -> Response[Any]:
    target = f"{UI_PATH}/sign-in?next={quote(request.url.path)}"
    if exc.reason:
        target += f"&reason={exc.reason}"
    if request.headers.get("hx-request"):
        return Response(content="", status_code=200, headers={"HX-Redirect": target})
    return Redirect(target, status_code=303)


class DashboardErrors:
    """The table's answers, and Litestar's refusals, as the dashboard's error page."""

    def answer(self, request: Request[Any, Any, Any], exc: Exception, answer: ErrorAnswer) -> Response[Any]:
        if answer.kind == "internal":
            return _page(request, 500, "Internal error", "Something went wrong; the error is in the api's log.")
        if answer.kind == "unavailable":
            return _page(request, answer.status, "Unavailable", f"{sentence(answer.detail)}.")
        return _page(request, answer.status, answer.code.replace("_", " ").capitalize(), answer.detail)

    def validation(self, request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
        problems = exc.extra if isinstance(exc.extra, list) else []
        parts = [f"{p.get('key')}: {p.get('message')}" for p in problems if isinstance(p, dict)]
        return _page(request, 400, "Invalid request", "; ".join(parts) or exc.detail)

    def http(self, request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        if exc.status_code >= 500:
            log.exception("dashboard: unhandled error", exc_info=exc)
            return _page(request, 500, "Internal error", "Something went wrong; the error is in the api's log.")
        return _page(request, exc.status_code, "Request refused", exc.detail)


def _forbidden(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    detail = exc.detail
    if "CSRF" in detail:
        detail = "This form has expired or did not come from this dashboard. Go back, reload the page and try again."
    return _page(request, 403, "Forbidden", detail)


def _not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
    return _page(request, 404, "Not found", "There is no such page.")


def dashboard_or(api_handler: Callable[..., Response[Any]]) -> Callable[..., Response[Any]]:
    """For the app's 404s (no route matched, so the dashboard's own handlers never ran): a page under /ui, the
    API's JSON elsewhere."""

    def handle(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
        if request.url.path == UI_PATH or request.url.path.startswith(UI_PATH + "/"):
            return _not_found(request, exc)
        return api_handler(request, exc)

    return handle


def ui_exception_handlers() -> Handlers:
    return exception_handlers(DashboardErrors()) | {
        SignInRequiredError: _sign_in,
        PermissionDeniedException: _forbidden,
        NotFoundException: _not_found,
    }
