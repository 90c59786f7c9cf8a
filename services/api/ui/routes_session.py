"""Signing in to the dashboard with a token (the API's own bearer token) and signing out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie, State
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from services.api.core.api_errors import UnauthorizedError
from services.api.http.dependencies import services_of
from services.api.ui.session import SIGN_IN_REASONS, TOKEN_COOKIE, UI_PATH, cookie_lifetime, open_mode
from services.api.ui.views import page, see_other


class SignInForm(msgspec.Struct, kw_only=True):
    token: str = ""
    next: str = ""


def _safe_next(target: str) -> str:
    """Only a dashboard path: never a redirect to another site."""
    return target if target.startswith(UI_PATH) and not target.startswith("//") and "\\" not in target else UI_PATH


def _cookie(request: Request[Any, Any, State], token: str, expires_at: datetime | None) -> Cookie:
    # Litestar's `expires` is seconds from now (as `max_age`), not a timestamp: both are the token's lifetime left.
    lifetime = cookie_lifetime(expires_at, datetime.now(UTC))
    return Cookie(
        key=TOKEN_COOKIE,
        value=token,
        path=UI_PATH,
        httponly=True,
        samesite="strict",
        # Behind a TLS-terminating proxy the api sees http: the proxy's X-Forwarded-Proto says https.
        secure="https" in (request.url.scheme, request.headers.get("x-forwarded-proto", "").lower()),
        max_age=lifetime,
        expires=lifetime,
    )


class SessionController(Controller):
    path = "/"

    @get("/sign-in")
    async def sign_in_page(self, request: Request[Any, Any, State]) -> Template | Redirect:
        if open_mode(request):
            return see_other(UI_PATH)
        return page(
            request,
            "sign_in.html",
            None,
            "sign-in",
            next=_safe_next(request.query_params.get("next", UI_PATH)),
            reason=SIGN_IN_REASONS.get(request.query_params.get("reason", "")),
            error=None,
        )

    @post("/sign-in", status_code=303)
    async def sign_in(
        self,
        request: Request[Any, Any, State],
        data: Annotated[SignInForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        token = "".join(data.token.split())
        if token.lower().startswith("bearer"):
            token = token[len("bearer") :]
        target = _safe_next(data.next or UI_PATH)
        try:
            principal = services_of(request.app.state).authenticator.authenticate(f"Bearer {token}")
        except UnauthorizedError as exc:
            response = page(request, "sign_in.html", None, "sign-in", next=target, reason=None, error=exc.detail)
            response.status_code = 401
            return response
        redirect = Redirect(target, status_code=303)
        redirect.set_cookie(_cookie(request, token, principal.expires_at))
        return redirect

    @post("/sign-out", status_code=303)
    async def sign_out(self) -> Redirect:
        redirect = see_other(f"{UI_PATH}/sign-in", "signed-out")
        redirect.delete_cookie(TOKEN_COOKIE, path=UI_PATH)
        return redirect
