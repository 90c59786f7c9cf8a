"""One HTTP delivery of a webhook: no redirects followed, bounded time, bounded response body."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from yarl import URL

from shared.contracts.executions import ExecutionRequested
from shared.contracts.jobs import WebhookSpec

USER_AGENT = "scheduler-dispatcher/0.1"


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What the receiver did. `error` is None exactly when the attempt succeeded."""

    duration_ms: int
    response_code: int | None = None
    response_body: str | None = None
    error: str | None = None
    timed_out: bool = False


def _request_headers(webhook: WebhookSpec, request: ExecutionRequested) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
    headers.update(webhook.headers)
    headers["webhook-id"] = request.occurrence_id
    return headers


async def deliver(
    session: aiohttp.ClientSession, request: ExecutionRequested, timeout: float, body_limit: int
) -> DeliveryOutcome:
    """Call the webhook once. 2xx is success; anything else (3xx included) is a failure with a reason."""
    webhook = request.webhook
    assert webhook is not None
    url = URL(webhook.url)
    if webhook.query_params:
        url = url.update_query(webhook.query_params)
    body = webhook.body_template.encode() if webhook.body_template is not None else None
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        async with asyncio.timeout(timeout):
            async with session.request(
                webhook.method,
                url,
                data=body,
                headers=_request_headers(webhook, request),
                allow_redirects=False,
            ) as response:
                raw = await response.content.read(body_limit)
                text = raw.decode("utf-8", errors="replace")
                code = response.status
    except TimeoutError:
        return DeliveryOutcome(elapsed(), error=f"no response within {timeout:g} s", timed_out=True)
    except aiohttp.ClientError as exc:
        return DeliveryOutcome(elapsed(), error=f"{type(exc).__name__}: {exc}")
    if 200 <= code < 300:
        return DeliveryOutcome(elapsed(), response_code=code, response_body=text)
    return DeliveryOutcome(elapsed(), response_code=code, response_body=text, error=f"receiver answered HTTP {code}")
