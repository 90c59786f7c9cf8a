"""Rendering a dashboard page: the template, with what every page's frame shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from litestar import MediaType, Request
from litestar.response import Redirect, Template

from services.api.core.api_errors import ValidationFailedError
from services.api.core.auth import Principal
from services.api.http.dependencies import services_of as resources
from services.api.ui.session import UI_PATH, open_mode
from shared.domain.job_checks import YEARS, in_year_range

# Messages an action leaves for the page it lands on, by code (the text never comes from the URL).
NOTICES = {
    "created": "Job created.",
    "saved": "Changes saved.",
    "paused": "Job paused: it will not fire until it is resumed.",
    "resumed": "Job resumed.",
    "deleted": "Job deleted.",
    "ran": "Run requested: the execution appears below as soon as it is recorded.",
    "backfill-started": "Backfill started: its occurrences are requested at the rate given (while the job is paused,"
    " it waits).",
    "backfill-cancelled": "Backfill cancelled: it requests nothing more (what it requested still runs).",
    "signed-out": "Signed out.",
}


async def note_positions(request: Request[Any, Any, Any]) -> None:
    """Before a dashboard handler runs: how far the read models were when the request began. Its page shows at
    least this much, and the page's event stream announces anything later (read before the page's queries, so
    nothing falls in between)."""
    live = resources(request.app.state).live
    request.state["live_seen"] = live.positions() if live is not None else {}


def fragment(request: Request[Any, Any, Any], template: str, **context: Any) -> Template:
    """Part of a page (what htmx swaps in)."""
    return Template(
        template_name=template,
        context={"request": request, "now": datetime.now(UTC), "ui": UI_PATH, **context},
        media_type=MediaType.HTML,
    )


def page(
    request: Request[Any, Any, Any], template: str, principal: Principal | None, active: str, **context: Any
) -> Template:
    """A whole page: the fragment's context and the frame's (who is signed in, the menu, the event stream)."""
    seen = request.state.get("live_seen", {})
    return fragment(
        request,
        template,
        principal=principal,
        open_mode=open_mode(request),
        active=active,
        notice=NOTICES.get(request.query_params.get("done", "")),
        live_url=f"{UI_PATH}/live?{urlencode(seen)}",
        **context,
    )


def see_other(path: str, done: str | None = None) -> Redirect:
    return Redirect(f"{path}?done={done}" if done else path, status_code=303)


def wants_fragment(request: Request[Any, Any, Any]) -> bool:
    """An htmx request for part of a page (a list refreshing itself), not a whole page."""
    return bool(request.headers.get("hx-request")) and not request.headers.get("hx-boosted")


def uuid_param(raw: str | None, name: str) -> UUID | None:
    if not raw:
        return None
    try:
        return UUID(raw.strip())
    except ValueError:
        raise ValidationFailedError(f"{name} must be a UUID, not {raw!r}", field=name) from None


def time_param(raw: str | None, name: str) -> datetime | None:
    """A time from a filter box: ISO 8601, or a datetime-local value; without an offset it is UTC."""
    if not raw:
        return None
    detail = f"{name} must be a time such as 2026-11-24T09:00 ({YEARS}), not {raw!r}"
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValidationFailedError(detail, field=name) from None
    if not in_year_range(moment):
        raise ValidationFailedError(detail, field=name)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
