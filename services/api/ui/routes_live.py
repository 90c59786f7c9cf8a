"""Server-sent events for the open pages: "job" and "execution" notices, each once the read models hold it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import ServerSentEvent, ServerSentEventMessage

from services.api.core.auth import LEEWAY_SECONDS, Principal
from services.api.core.live_feed import LiveFeed

RECONNECT_MILLISECONDS = 2000


@get("/live")
async def live(
    principal: NamedDependency[Principal],
    live: NamedDependency[LiveFeed],
    job: FromQuery[int] = 0,
    execution: FromQuery[int] = 0,
) -> ServerSentEvent:
    """`job` and `execution` are the stream positions the page was rendered at (see LiveFeed.notices)."""
    feed = live

    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        yield ServerSentEventMessage(data=None, comment="connected", retry=RECONNECT_MILLISECONDS)
        until = principal.expires_at + timedelta(seconds=LEEWAY_SECONDS) if principal.expires_at else None
        async for notice in feed.notices(principal, {"job": job, "execution": execution}, until):
            if notice is None:
                yield ServerSentEventMessage(data=None, comment="keepalive")
            else:
                data = msgspec.json.encode({"job_id": notice.job_id, "sequence": notice.sequence}).decode()
                yield ServerSentEventMessage(event=notice.topic, data=data)

    return ServerSentEvent(messages(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
