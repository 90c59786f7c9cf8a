"""One HTTP delivery of a webhook: no redirects followed, bounded time, bounded response body."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from multidict import CIMultiDict
from yarl import URL

from shared.contracts.executions import ExecutionRequested
from shared.contracts.jobs import WebhookSpec
from shared.delivery.egress import EgressPolicy, EgressRefusedError
from shared.delivery.http_client import ConnectError, HttpClient
from shared.delivery.http_connection import HttpClientError
from shared.delivery.signing import signature_headers
from shared.delivery.templates import TemplateError, render, sent_content_type
from shared.observability import tracing

USER_AGENT = "scheduler-dispatcher/0.1"


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What the receiver did. `error` is None exactly when the attempt succeeded."""

    duration_ms: int
    response_code: int | None = None
    response_body: str | None = None
    error: str | None = None
    timed_out: bool = False
    # The receiver's Retry-After header (429 and 503 only).
    retry_after: str | None = None
    # The request could not even be built (a URL or header the HTTP client refuses): retrying cannot help.
    unsendable: bool = False


def template_variables(request: ExecutionRequested) -> dict[str, str | int]:
    """What a body template may use (see shared/delivery/templates.py)."""
    up = request.upstream
    return {
        "upstream_job_id": str(up.job_id) if up else "",
        "upstream_occurrence_id": up.occurrence_id if up else "",
        "upstream_status": up.status if up else "",
        "upstream_response_code": up.response_code if up and up.response_code is not None else "",
        "upstream_response_body": up.response_body or "" if up else "",
        "upstream_error": up.error or "" if up else "",
        "job_id": str(request.job_id),
        "job_name": request.job_name,
        "account_id": str(request.account_id),
        "webhook_id": str(request.webhook.id) if request.webhook else "",
        "execution_id": str(request.execution_id),
        "occurrence_id": request.occurrence_id,
        "nominal_time": request.nominal_time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "attempt": request.attempt,
    }


def _request_headers(webhook: WebhookSpec, request: ExecutionRequested) -> CIMultiDict[str]:
    # Case-insensitive, so a webhook's "content-type" replaces the default instead of doubling it.
    headers = CIMultiDict({"User-Agent": USER_AGENT})
    if webhook.body_template is not None:
        headers["Content-Type"] = webhook.content_type
    headers.update(webhook.headers)
    headers["webhook-id"] = request.occurrence_id
    return headers


async def deliver(
    client: HttpClient,
    request: ExecutionRequested,
    timeout: float,
    body_limit: int,
    secrets: Sequence[str] = (),
    now: datetime | None = None,
    egress: EgressPolicy | None = None,
) -> DeliveryOutcome:
    """Call the webhook once. 2xx is success; anything else (3xx included) is a failure with a reason.

    `egress` checks a target written as an IP literal; names are checked by the client's resolver
    (GuardedResolver), on the addresses actually connected to. A refused target is final: retrying cannot help.
    """
    webhook = request.webhook
    if webhook is None:
        raise ValueError(f"execution {request.execution_id} has no webhook to deliver")
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    text_body: str | None = None
    if webhook.body_template is not None:
        try:
            content_type = sent_content_type(webhook.content_type, webhook.headers)
            text_body = render(webhook.body_template, content_type, template_variables(request))
        except TemplateError as exc:  # refused when the webhook was saved; kept in case of an old event
            return DeliveryOutcome(elapsed(), error=str(exc), unsendable=True)
    headers = _request_headers(webhook, request)
    if secrets:
        signed_at = now or datetime.now(UTC)
        headers.update(signature_headers(secrets, request.occurrence_id, signed_at, text_body or ""))
    body = text_body.encode() if text_body is not None else None
    try:
        url = URL(webhook.url)
        if webhook.query_params:
            url = url.update_query(webhook.query_params)
    except ValueError as exc:  # a URL that cannot be sent (UnicodeError is a ValueError): not retryable
        return DeliveryOutcome(elapsed(), error=f"the request could not be built: {exc}", unsendable=True)
    return await send(client, webhook.method, url, headers, body, timeout, body_limit, egress, started)


async def send(
    client: HttpClient,
    method: str,
    url: URL,
    headers: CIMultiDict[str],
    body: bytes | None,
    timeout: float,
    body_limit: int,
    egress: EgressPolicy | None,
    started: float,
) -> DeliveryOutcome:
    """Send one prepared request and classify the answer (`started`: the monotonic time the attempt began)."""

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        if egress is not None:
            egress.check_literal(url.raw_host or "")
        async with asyncio.timeout(timeout):
            # A client span, whose trace context the receiver gets (`traceparent`); host and scheme only: a
            # webhook's path and query often hold its secret (Slack, Discord, tokens).
            what = (
                {"http.request.method": method, "server.address": url.host or "", "url.scheme": url.scheme}
                if tracing.enabled()
                else None
            )
            with tracing.span(method, tracing.CLIENT, attributes=what) as current:
                answer = await client.send(method, url, tracing.inject(headers).items(), body, body_limit)
                if current is not None:
                    current.set_attribute("http.response.status_code", answer.status)
                    if answer.status >= 400:
                        tracing.failed(current, f"HTTP {answer.status}")
    except TimeoutError:
        return DeliveryOutcome(elapsed(), error=f"no response within {timeout:g} s", timed_out=True)
    except EgressRefusedError as exc:
        return DeliveryOutcome(elapsed(), error=str(exc), unsendable=True)
    except ConnectError as exc:
        if isinstance(exc.os_error, EgressRefusedError):
            return DeliveryOutcome(elapsed(), error=f"{url}: {exc.os_error}", unsendable=True)
        return DeliveryOutcome(elapsed(), error=str(exc))
    except HttpClientError as exc:
        return DeliveryOutcome(elapsed(), error=str(exc))
    except ValueError as exc:  # a URL or header that cannot be sent (UnicodeError is a ValueError): not retryable
        return DeliveryOutcome(elapsed(), error=f"the request could not be built: {exc}", unsendable=True)
    code = answer.status
    text = answer.body.decode("utf-8", errors="replace")
    retry_after = answer.headers.get("retry-after") if code in (429, 503) else None
    if 200 <= code < 300:
        return DeliveryOutcome(elapsed(), response_code=code, response_body=text)
    return DeliveryOutcome(
        elapsed(),
        response_code=code,
        response_body=text,
        error=f"receiver answered HTTP {code}",
        retry_after=retry_after,
    )
