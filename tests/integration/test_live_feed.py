"""The dashboard's live feed on a real nats-server: a page hears of its accounts' events, paced, and never misses the
last one of a quick run of events (the run's result following its request, for example)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import nats
import pytest

from services.api.core.auth import Principal
from services.api.core.live_feed import PACE_SECONDS, LiveFeed, Notice
from services.api.core.projection_wait import ProjectionWatcher
from shared.bus.streams import ensure_streams
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.waiting import eventually

pytestmark = pytest.mark.integration


class Projected:
    """Read models that hold every event at once: this test is about the feed, not the projection."""

    def position(self, _stream: str) -> int:
        return 0

    async def wait_for(self, _stream: str, _position: int, _timeout: float) -> bool:
        return True


async def test_a_quick_run_of_events_reaches_the_page_as_one_notice_for_the_last_after_the_pace(
    settings: Settings,
) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        names = Names(settings.namespace)
        feed = LiveFeed(js, names, cast(ProjectionWatcher, Projected()))
        mine, other, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        heard: list[tuple[float, Notice]] = []
        loop = asyncio.get_running_loop()

        async def page() -> None:
            async for notice in feed.notices(Principal("page", frozenset({mine})), {}):
                if notice is not None:
                    heard.append((loop.time(), notice))

        async def publish(account: uuid.UUID) -> int:
            ack: Any = await js.publish(names.execution_subject("failed", account, job), b"{}")
            return int(ack.seq)

        reading = asyncio.create_task(page())
        try:
            # The feed reads only new events: publish until the page hears one, so it is surely reading.
            published: list[int] = []

            async def first() -> bool:
                published.append(await publish(mine))
                return bool(heard)

            await eventually(first, what="the page hearing its first event")
            await eventually(lambda: heard[-1][1].sequence == published[-1], what="the first events all announced")
            before = len(heard)
            await publish(other)  # another account's: never announced to this page
            sequences = [await publish(mine) for _ in range(3)]
            await eventually(lambda: any(n.sequence == sequences[-1] for _, n in heard), what="the last event")
            after = heard[before:]
            assert [n.sequence for _, n in after] == [sequences[-1]], "coalesced into one notice, the last one"
            assert after[0][1].topic == "execution" and after[0][1].job_id == str(job)
            assert after[0][0] - heard[before - 1][0] >= PACE_SECONDS * 0.99, "sent at the end of the pace"
        finally:
            await feed.close()
            await asyncio.wait_for(reading, 5)
    finally:
        await nc.close()


async def test_a_page_that_connects_after_an_event_was_read_but_before_it_was_projected_hears_of_it(
    settings: Settings,
) -> None:
    """The job page after "Run now": the run's result is read by the feed while the browser is between the old
    page and the new one (no page of that account is listening), and projected after the new page connected."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings)
        names = Names(settings.namespace)
        feed = LiveFeed(js, names, cast(ProjectionWatcher, Projected()))  # projects nothing yet: position 0
        other, mine, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        heard: dict[uuid.UUID, list[Notice]] = {other: [], mine: []}

        async def page(account: uuid.UUID) -> None:
            async for notice in feed.notices(Principal("page", frozenset({account})), {"execution": 0, "job": 0}):
                if notice is not None:
                    heard[account].append(notice)

        async def publish(account: uuid.UUID) -> int:
            ack: Any = await js.publish(names.execution_subject("failed", account, job), b"{}")
            return int(ack.seq)

        pages = [asyncio.create_task(page(other))]  # another account's page keeps the feed reading
        try:

            async def reading() -> bool:
                await publish(other)
                return bool(heard[other])

            await eventually(reading, what="the feed reading")
            result = await publish(mine)  # read by the feed while no page of this account is open
            last = await publish(other)
            await eventually(lambda: any(n.sequence == last for n in heard[other]), what="the feed past the result")

            pages.append(asyncio.create_task(page(mine)))
            notices = await eventually(lambda: heard[mine], what="the page hearing of the result")
            assert notices[0].topic == "execution" and notices[0].sequence >= result
        finally:
            await feed.close()
            await asyncio.wait_for(asyncio.gather(*pages), 5)
    finally:
        await nc.close()
