"""Backfills on the dashboard's job page, against `scheduler dev`: started from the page's form and cancelled with
its button in a real browser (headless Chromium), and, without a browser, every refusal shown on the page with the
core's message (never a 500), the form's CSRF token required, and a chained job offered no form."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.browser import Session, screenshot, signed_in_session
from tests.e2e.conftest import DevServer, token_for
from tests.e2e.harness import Api
from tests.e2e.test_backfills import EVERY_SECOND, start_backfill
from tests.e2e.test_chains import chained
from tests.e2e.test_dashboard import _form_token, _signed_in_session, live
from tests.e2e.test_delivery_retries import create_job
from tests.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BOX = "%Y-%m-%dT%H:%M:%S"  # what a datetime-local box with step="1" holds
SHOWN = "%Y-%m-%d %H:%M:%SZ"  # how the dashboard shows a time


@pytest.fixture
async def signed_in(dev_server: DevServer, api: Api, account_id: uuid.UUID) -> AsyncIterator[Session]:
    async with signed_in_session(dev_server.base_url, api, token_for(account_id)) as session:
        yield session


async def paused_job(api: Api, account_id: uuid.UUID, receiver: Receiver) -> dict[str, Any]:
    """An every-second job, paused: its backfills wait, so one stays running until it is cancelled."""
    return await create_job(api, account_id, EVERY_SECOND, enabled=False, webhooks=[{"url": receiver.url_for("/bf")}])


async def backfills_of(api: Api, job_id: str) -> list[dict[str, Any]]:
    status, page = await api.call("GET", f"/api/jobs/{job_id}/backfills")
    assert status == 200, page
    return page["items"]  # type: ignore[no-any-return]


async def test_a_backfill_is_started_from_the_job_page_and_cancelled_with_its_button(
    signed_in: Session, receiver: Receiver, account_id: uuid.UUID
) -> None:
    page, api = signed_in.page, signed_in.api
    job = await paused_job(api, account_id, receiver)
    await page.goto(f"{signed_in.base}/ui/jobs/{job['id']}")
    await expect(page.locator("#backfills")).to_contain_text("No backfills yet.")
    await expect(page.locator("#backfills label[for=b-start]")).to_have_text("From (UTC)")

    # A range reaching into the future: the core's message on its box, the form as typed, nothing started.
    end = (datetime.now(UTC) - timedelta(minutes=1)).replace(second=30, microsecond=0)
    start = end - timedelta(minutes=9)
    await page.fill("#b-start", start.strftime(BOX))
    await page.fill("#b-end", (end + timedelta(hours=1)).strftime(BOX))
    await page.fill("#b-per_second", "5")
    await page.click("button:text('Start backfill')")
    await expect(page.locator(".field-error[data-field=end]")).to_contain_text("s ago")
    await expect(page.locator("#backfill-error")).to_contain_text("The backfill was not started")
    await expect(page.locator("#b-start")).to_have_value(start.strftime(BOX))
    await expect(page.locator("#b-per_second")).to_have_value("5")
    await screenshot(page, "job-page-backfill-refused")
    assert await backfills_of(api, job["id"]) == []

    # A past range: started, and listed running with its range, rate and count.
    await page.fill("#b-end", end.strftime(BOX))
    await page.click("button:text('Start backfill')")
    await expect(page.locator(".notice")).to_contain_text("Backfill started")
    [backfill] = await backfills_of(api, job["id"])
    assert backfill["status"] == "running" and backfill["per_second"] == 5 and backfill["total"] == 9 * 60 + 1
    assert (datetime.fromisoformat(backfill["start"]), datetime.fromisoformat(backfill["end"])) == (start, end)
    row = page.locator(f"#job-backfills tr[data-backfill='{backfill['id']}']")
    await expect(row).to_have_attribute("data-status", "running")
    await expect(row).to_contain_text(f"{start.strftime(SHOWN)} \N{EN DASH} {end.strftime(SHOWN)}")
    await expect(row.locator("td.done")).to_have_text("0 / 541")
    await expect(row).to_contain_text("5/s")
    await screenshot(page, "job-page-backfill-running")

    # Its Cancel button: cancelled on the page and through the API, with no button any more.
    await row.locator("button:text('Cancel')").click()
    await expect(page.locator(".notice")).to_contain_text("Backfill cancelled")
    await expect(row).to_have_attribute("data-status", "cancelled")
    await expect(row.locator("td.reason")).to_contain_text("cancelled by")
    await expect(row.locator("button")).to_have_count(0)
    await screenshot(page, "job-page-backfill-cancelled")
    [cancelled] = await backfills_of(api, job["id"])
    assert cancelled["status"] == "cancelled" and cancelled["reason"], cancelled

    # One started and cancelled elsewhere (through the API) shows up live, without reloading the page.
    await live(page)
    await page.evaluate("window.notReloaded = true")
    other = await start_backfill(api, job["id"], start, end, per_second=1)
    row = page.locator(f"#job-backfills tr[data-backfill='{other['id']}']")
    await expect(row).to_have_attribute("data-status", "running")
    status, _ = await api.call("DELETE", f"/api/jobs/{job['id']}/backfills/{other['id']}")
    assert status == 202
    await expect(row).to_have_attribute("data-status", "cancelled")
    await expect(page.locator("#job-backfills tbody tr")).to_have_count(2)
    assert await page.evaluate("window.notReloaded") is True


async def test_a_refused_backfill_shows_the_cores_message_on_the_job_page_never_a_500(
    dev_server: DevServer, api: Api, receiver: Receiver, account_id: uuid.UUID
) -> None:
    base = dev_server.base_url
    job = await paused_job(api, account_id, receiver)
    link = await chained(api, account_id, job["id"])
    path = f"{base}/ui/jobs/{job['id']}/backfills"
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)  # a range must end a little before now
    hour = timedelta(hours=1)

    def box(moment: datetime) -> str:
        return moment.strftime(BOX)

    session = await _signed_in_session(base, token_for(account_id))
    csrf = await _form_token(session, f"{base}/ui/jobs/{job['id']}")
    async with session:

        async def refused(form: dict[str, str], status: int, says: str, at: str = path) -> str:
            async with session.post(at, data=form | {"_csrf_token": csrf}, allow_redirects=False) as response:
                text = await response.text()
                assert response.status == status, (form, response.status, text[-2000:])
                assert "text/html" in response.headers["content-type"]
            assert says in text, (form, says)
            return text

        # Without the form's token: refused, nothing started.
        async with session.post(path, data={"start": box(now - hour), "end": box(now)}) as response:
            assert response.status == 403 and "did not come from this dashboard" in await response.text()

        for form, says in (
            ({"start": box(now - hour), "end": box(now + hour)}, "end: must be at least 10 s ago"),  # an hour ahead
            ({"start": box(now), "end": box(now - hour)}, "start: must be before end"),
            ({"start": box(now - hour), "end": box(now), "per_second": "0"}, "per_second: must be 1-100"),
            ({"start": box(now - hour), "end": box(now), "per_second": "lots"}, "per_second: must be a whole number"),
            ({"start": box(now - 3 * hour), "end": box(now)}, "more than 10,000 occurrences"),
            ({"start": "yesterday", "end": box(now)}, "start must be a time such as"),
            ({"start": box(now - hour)}, "end: a time is required"),
        ):
            text = await refused(form, 422, says)
            assert 'id="backfill-error"' in text and 'id="backfill-form"' in text
        assert await backfills_of(api, job["id"]) == []

        # A chained job: no form on its page, and a post says why.
        async with session.get(f"{base}/ui/jobs/{link['id']}") as response:
            text = await response.text()
            assert response.status == 200 and 'id="backfills"' in text
        assert "A chained job runs after another; backfill that one" in text and 'id="backfill-form"' not in text
        text = await refused(
            {"start": box(now - hour), "end": box(now)},
            422,
            "a chained job has no schedule of its own",
            f"{base}/ui/jobs/{link['id']}/backfills",
        )
        assert 'id="backfill-error"' in text

        # Three running in the account (their jobs paused, so they wait): a fourth is refused on the form (409).
        others = [job] + [await paused_job(api, account_id, receiver) for _ in range(2)]
        running = [await start_backfill(api, j["id"], now - hour, now, per_second=1) for j in others]
        await refused({"start": box(now - hour), "end": box(now)}, 409, "3 backfills running")

        # Cancelling: an unknown one is a 404 page, one that has ended a 409 page saying so.
        cancel = f"{path}/{running[0]['id']}/cancel"
        async with session.post(cancel, data={"_csrf_token": csrf}, allow_redirects=False) as response:
            assert response.status == 303 and response.headers["location"].endswith("?done=backfill-cancelled")
        await refused({}, 409, "the backfill has ended (cancelled)", cancel)
        await refused({}, 404, "not found", f"{path}/{uuid.uuid4()}/cancel")
        await refused({}, 404, "not found", f"{path}/not-an-id/cancel")
        await refused({}, 404, "not found", f"{base}/ui/jobs/{others[1]['id']}/backfills/{running[2]['id']}/cancel")
        assert [b["status"] for b in await backfills_of(api, job["id"])] == ["cancelled"]
        # The list the page refreshes live.
        async with session.get(path, headers={"hx-request": "true"}) as response:
            text = await response.text()
            assert response.status == 200 and "<html" not in text
        assert f'data-backfill="{running[0]["id"]}" data-status="cancelled"' in text

    # Another account's job: 403, nothing started.
    stranger = await _signed_in_session(base, token_for(uuid.uuid4()))
    stranger_csrf = await _form_token(stranger, f"{base}/ui")
    async with stranger:
        form = {"start": box(now - hour), "end": box(now), "_csrf_token": stranger_csrf}
        async with stranger.post(path, data=form, allow_redirects=False) as response:
            assert response.status == 403
    assert [b["status"] for b in await backfills_of(api, job["id"])] == ["cancelled"]
