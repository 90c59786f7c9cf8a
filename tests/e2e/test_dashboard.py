"""The dashboard in a real browser (headless Chromium through Playwright) against `scheduler dev`, with real NATS
and Postgres: signing in, creating every kind of job through the form, live updates, a failed execution, a
re-driven dead letter, pausing and deleting. Each test saves screenshots of the pages it visits."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import aiohttp
import jwt
import pytest
from playwright.async_api import Page, expect

from tests.e2e.browser import WAIT_MS, Session, launched, screenshot, signed_in_session
from tests.e2e.conftest import DevServer, token_for
from tests.e2e.harness import Api, create_firing_job
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=WAIT_MS)


@pytest.fixture
async def signed_in(dev_server: DevServer, api: Api, account_id: uuid.UUID) -> AsyncIterator[Session]:
    """A browser page signed in to the dashboard with a token for `account_id`."""
    async with signed_in_session(dev_server.base_url, api, token_for(account_id)) as session:
        yield session


async def live(page: Page) -> None:
    """Wait until the page's event stream is open, so nothing that happens next is missed."""
    await expect(page.locator("#live-status.on")).to_be_visible()


async def test_sign_in_with_a_token_and_out_again(dev_server: DevServer, account_id: uuid.UUID) -> None:
    base = dev_server.base_url
    async with launched() as browser:
        page = await browser.new_page()
        await page.goto(base + "/ui/jobs")
        await expect(page).to_have_url(re.compile(r"/ui/sign-in\?next=/ui/jobs"))
        await screenshot(page, "sign-in")

        await page.fill("#token", token_for(account_id, ttl_seconds=-120))
        await page.click("button[type=submit]")
        await expect(page.locator("#sign-in-error")).to_have_text("token expired")

        await page.fill("#token", "Bearer " + token_for(account_id))
        await page.click("button[type=submit]")
        await expect(page).to_have_url(base + "/ui/jobs")
        await expect(page.locator("h1")).to_have_text("Jobs")

        await page.click("text=Sign out")
        await expect(page).to_have_url(re.compile(r"/ui/sign-in"))
        await page.goto(base + "/ui")
        await expect(page).to_have_url(re.compile(r"/ui/sign-in"))


async def test_the_sign_in_cookie_expires_with_the_token(dev_server: DevServer, account_id: uuid.UUID) -> None:
    token = token_for(account_id, ttl_seconds=7 * 86400)
    exp = datetime.fromtimestamp(jwt.decode(token, options={"verify_signature": False})["exp"], UTC)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(dev_server.base_url + "/ui/sign-in") as response:
            csrf = re.search(r'name="_csrf_token" value="([0-9a-f]+)"', await response.text())
        assert csrf is not None
        async with session.post(
            dev_server.base_url + "/ui/sign-in", data={"token": token, "_csrf_token": csrf[1]}, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
            signed_at = datetime.now(UTC)
            cookie = response.cookies["scheduler_ui_token"]
    expires = parsedate_to_datetime(cookie["expires"])
    assert abs((expires - exp).total_seconds()) <= 2, (cookie.OutputString(), exp)
    assert abs((signed_at + timedelta(seconds=int(cookie["max-age"])) - exp).total_seconds()) <= 2, (
        cookie.OutputString()
    )


async def test_pages_fit_a_phone_screen(signed_in: Session, receiver: Receiver, account_id: uuid.UUID) -> None:
    """At 390 px wide nothing but the tables' own scroll areas may be wider than the screen."""
    page = signed_in.page
    created = await create_firing_job(signed_in.api, account_id, receiver.url, schedule="0 0 1 1 *")
    await page.set_viewport_size({"width": 390, "height": 844})
    for name, path in (
        ("overview", "/ui"),
        ("jobs", "/ui/jobs"),
        ("job", f"/ui/jobs/{created['job']['id']}"),
        ("form", "/ui/jobs/new"),
        ("executions", "/ui/executions"),
        ("dead-letters", "/ui/dead-letters"),
    ):
        await page.goto(signed_in.base + path)
        if name == "job":  # every part of the job page, its backfills with their form included
            await expect(page.locator("#backfills #backfill-form")).to_be_visible()
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than a phone's screen"
        await screenshot(page, f"phone-{name}")


async def _nexus_error(api: Api, body: dict[str, object]) -> str:
    status, answer = await api.call("POST", "/api/v1/jobs", json=body)
    assert status == 422, answer
    return str(answer["detail"][0]["msg"])


async def _job_count(api: Api, account_id: uuid.UUID) -> int:
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}&limit=1")
    assert status == 200, page
    return int(page["total"])


async def _fill_common(page: Page, name: str, kind: str, timezone: str) -> None:
    await page.goto(page.url.split("/ui")[0] + "/ui/jobs/new")
    await page.fill("#f-name", name)
    await page.select_option("#f-job_type", kind)
    await page.fill("#f-timezone", timezone)


async def test_every_kind_of_job_is_created_through_the_form_with_live_validation(
    signed_in: Session, receiver: Receiver, account_id: uuid.UUID
) -> None:
    page, api = signed_in.page, signed_in.api

    # Live validation shows the API's own message for a bad expression, and the form refuses it.
    expected = await _nexus_error(api, {"name": "x", "job_type": "cron", "cron_expression": "61 * * * *"})
    await _fill_common(page, "bad cron", "cron", "UTC")
    await page.fill("#f-cron_expression", "61 * * * *")
    await expect(page.locator("#preview-error")).to_have_text(expected)
    await page.fill("#f-url", receiver.url)
    before = await _job_count(api, account_id)
    await page.click("text=Create job")
    await expect(page.locator(".field-error[data-field=cron_expression]")).to_have_text(expected)
    assert await _job_count(api, account_id) == before

    # Cron, calling a webhook: the preview describes it as typed.
    await _fill_common(page, "weekday report", "cron", "America/New_York")
    await page.fill("#f-cron_expression", "30 9 * * 1-5")
    await expect(page.locator("#preview-words")).to_contain_text("09:30 AM, Monday through Friday")
    await page.fill("#f-url", receiver.url)
    await page.fill("#f-tags", "reports, weekday")
    await page.fill("#f-body_template", '{"job": "{{job_id}}"}')
    await screenshot(page, "job-form")
    await page.click("text=Create job")
    await expect(page.locator(".notice")).to_have_text("Job created.")
    await expect(page.locator("#schedule-words")).to_contain_text("09:30 AM, Monday through Friday (America/New_York)")
    await expect(page.locator(".fire-times li")).to_have_count(10)
    await screenshot(page, "job-page")

    # Interval.
    await _fill_common(page, "every hour", "interval", "UTC")
    await page.fill("#f-interval_seconds", "3600")
    await expect(page.locator("#preview-words")).to_contain_text("Every 1 h")
    await page.fill("#f-url", receiver.url)
    await page.click("text=Create job")
    await expect(page.locator("#schedule-words")).to_contain_text("Every 1 h")

    # Once at a date, running a task.
    zone = ZoneInfo("Asia/Tokyo")
    at = (datetime.now(UTC) + timedelta(days=2)).astimezone(zone).replace(second=0, microsecond=0)
    await _fill_common(page, "one-off export", "date", "Asia/Tokyo")
    await page.fill("#f-scheduled_time", at.strftime("%Y-%m-%dT%H:%M"))
    await page.check("input[name=action][value=task]")
    await page.fill("#f-task_name", "exports.run")
    await page.fill("#f-task_kwargs", '{"format": "csv"}')
    await page.click("text=Create job")
    await expect(page.locator("#schedule-words")).to_have_text(f"Once, at {at:%Y-%m-%d %H:%M:%S} JST")
    await expect(page.locator("dd.mono", has_text="exports.run")).to_be_visible()

    # A calendar rule across the spring daylight-saving change in Paris: the change is marked.
    await _fill_common(page, "paris mornings", "calendar", "Europe/Paris")
    await page.fill("#f-calendar_rule", '{"months": [3], "days_of_month": [27, 28, 29], "times": ["09:00"]}')
    await expect(page.locator("#schedule-preview .badge.dst").first).to_have_text("DST UTC+01:00 → UTC+02:00")
    await page.fill("#f-url", receiver.url)
    await page.click("text=Create job")
    await expect(page.locator("#schedule-words")).to_contain_text("in Mar at 09:00 (Europe/Paris)")
    await expect(page.locator(".fire-times .badge.dst").first).to_have_text("DST UTC+01:00 → UTC+02:00")

    # Each one is there through the API too, as the form described it.
    status, jobs = await api.call("GET", "/api/v1/jobs?limit=100")
    assert status == 200, jobs
    by_name = {j["name"]: j for j in jobs}
    assert by_name["weekday report"]["cron_expression"] == "30 9 * * 1-5"
    assert by_name["weekday report"]["tags"] == ["reports", "weekday"]
    assert by_name["every hour"]["interval_seconds"] == 3600
    assert by_name["one-off export"]["task_name"] == "exports.run"
    assert by_name["one-off export"]["task_kwargs"] == {"format": "csv"}
    assert by_name["paris mornings"]["calendar_rule"]["days_of_month"] == [27, 28, 29]
    assert "bad cron" not in by_name

    await page.goto(signed_in.base + "/ui/jobs?tag=reports")
    await expect(page.locator("#job-rows tbody tr")).to_have_count(1)
    await page.goto(signed_in.base + "/ui/jobs")
    await page.fill("input[name=q]", "paris")
    await expect(page.locator("#job-rows tbody tr")).to_have_count(1)
    await expect(page.locator("#job-rows tbody tr a").first).to_have_text("paris mornings")
    await expect(page.locator("#job-rows tbody tr").first).to_contain_text("in Mar at 09:00 (Europe/Paris)")
    await screenshot(page, "jobs")


async def test_an_execution_appears_live_without_reloading(
    signed_in: Session, receiver: Receiver, account_id: uuid.UUID
) -> None:
    page, api = signed_in.page, signed_in.api
    await page.goto(signed_in.base + "/ui/executions")
    await live(page)
    await page.evaluate("window.notReloaded = true")

    await create_firing_job(api, account_id, receiver.url)
    row = page.locator("tr[data-status=success]", has_text="every second").first
    await expect(row).to_be_visible()
    assert await page.evaluate("window.notReloaded") is True
    await screenshot(page, "executions")

    # Filters: by status and by job, and a time window that holds nothing.
    job_id = await row.locator("td:nth-child(2) a").get_attribute("href")
    assert job_id is not None
    await page.check("input[name=status][value=success]")
    await page.fill("input[name=job]", job_id.rsplit("/", 1)[1])
    await page.click("button:text('Filter')")
    await expect(page.locator("#execution-rows tbody tr").first).to_be_visible()
    statuses = await page.locator("#execution-rows tbody tr").evaluate_all("rows => rows.map(r => r.dataset.status)")
    assert statuses and set(statuses) == {"success"}, statuses
    await page.fill("input[name=until]", "2001-01-01T00:00:00")
    await page.click("button:text('Filter')")
    await expect(page.locator("#execution-rows tbody tr")).to_have_text(["No executions match."])

    await page.goto(signed_in.base + "/ui")
    await live(page)
    await page.evaluate("window.notReloaded = true")
    successes = page.locator("[data-hour=success]")
    shown = await successes.inner_text()
    await expect(successes).not_to_have_text(shown)
    assert int((await successes.inner_text()).replace(",", "")) > int(shown.replace(",", ""))
    assert await page.evaluate("window.notReloaded") is True
    await screenshot(page, "overview")


async def test_a_failed_execution_is_opened_and_its_dead_letter_re_driven(
    signed_in: Session, receiver: Receiver, account_id: uuid.UUID
) -> None:
    page, api = signed_in.page, signed_in.api
    receiver.statuses["/fail"] = 500
    receiver.reply = "boom: the receiver failed"
    body = {"account_id": str(account_id), "name": "flaky export", "schedule": "0 3 * * *", "type": 1}
    body |= {"enabled": False, "retry_policy": {"max_attempts": 1}}
    status, job = await api.call("POST", "/api/jobs", json=body)
    assert status == 201, job
    hook = {"job_id": job["id"], "url": receiver.url_for("/fail"), "method": "POST"}
    status, answer = await api.call("POST", "/webhooks", json=hook)
    assert status == 201, answer

    await page.goto(f"{signed_in.base}/ui/jobs/{job['id']}")
    await live(page)
    await page.click("text=Run now")
    await expect(page.locator(".notice")).to_contain_text("Run requested")
    dead = page.locator("#job-executions tr[data-status=dead_letter]")
    await expect(dead).to_have_count(1)

    await dead.locator("a").first.click()
    await expect(page.locator("#response-code")).to_have_text("500")
    await expect(page.locator("#response-body")).to_have_text("boom: the receiver failed")
    await expect(page.locator("#error")).to_contain_text("500")
    await expect(page.locator("#request-url")).to_have_text(receiver.url_for("/fail"))
    await screenshot(page, "execution-failed")
    execution_id = page.url.rsplit("/", 1)[1]

    receiver.statuses["/fail"] = 200
    await page.goto(signed_in.base + "/ui/dead-letters")
    await screenshot(page, "dead-letters")
    await page.check(f"input[name=execution_id][value='{execution_id}']")
    await page.click("text=Re-drive selected")
    await expect(page.locator("#redrive-report")).to_contain_text("Re-driven: 1")
    await expect(page.locator(f"tr[data-execution='{execution_id}']")).to_have_count(0)

    calls = await eventually(lambda: len(receiver.on("/fail")) >= 2 and receiver.on("/fail"), what="the re-drive")
    assert calls[0].headers["webhook-id"] == calls[1].headers["webhook-id"]


async def test_pause_and_delete_a_job(signed_in: Session, receiver: Receiver, account_id: uuid.UUID) -> None:
    page, api = signed_in.page, signed_in.api
    created = await create_firing_job(api, account_id, receiver.url, schedule="0 0 1 1 *")
    job_id = created["job"]["id"]
    await page.goto(f"{signed_in.base}/ui/jobs/{job_id}")

    await page.click("text=Edit")
    await expect(page.locator("#f-name")).to_have_value("every second")
    await page.fill("#f-name", "yearly, renamed")
    await page.fill("#f-cron_expression", "0 12 1 7 *")
    await page.fill("#f-timezone", "Australia/Sydney")
    await expect(page.locator("#preview-words")).to_contain_text("12:00 PM, on day 1 of the month, only in July")
    await page.fill("#f-url", receiver.url_for("/renamed"))
    await page.click("text=Save changes")
    await expect(page.locator(".notice")).to_have_text("Changes saved.")
    await expect(page.locator("h1")).to_contain_text("yearly, renamed")
    await expect(page.locator("#schedule-words")).to_contain_text("(Australia/Sydney)")
    status, jobs = await api.call("GET", "/api/v1/jobs?limit=10")
    edited = next(j for j in jobs if j["uuid"] == job_id)
    assert (edited["name"], edited["cron_expression"], edited["timezone"]) == (
        "yearly, renamed",
        "0 12 1 7 *",
        "Australia/Sydney",
    )
    status, hook = await api.call("GET", f"/webhooks/{created['webhook']['id']}")
    assert (status, hook["url"]) == (200, receiver.url_for("/renamed"))

    await page.click("button:text('Pause')")
    await expect(page.locator(".notice")).to_contain_text("Job paused")
    await expect(page.locator("#job-state")).to_have_text("paused")
    status, job = await api.call("GET", f"/api/jobs/{job_id}")
    assert (status, job["enabled"]) == (200, False)

    await page.click("text=Delete")
    await expect(page.locator("h1")).to_contain_text("Delete")
    await screenshot(page, "confirm-delete")
    await page.click("text=Yes, delete this job")
    await expect(page.locator(".notice")).to_have_text("Job deleted.")
    await expect(page.locator(f"tr[data-job='{job_id}']")).to_have_count(0)
    status, _ = await api.call("GET", f"/api/jobs/{job_id}")
    assert status == 404


async def test_forms_need_their_csrf_token_and_other_accounts_stay_out(
    dev_server: DevServer, api: Api, receiver: Receiver, account_id: uuid.UUID
) -> None:
    """Without a browser: a forged form post is refused and changes nothing; another account's job is 403; bad
    parameters are a 400 page, never a 500."""
    created = await create_firing_job(api, account_id, receiver.url, schedule="0 0 1 1 *")
    job_id = created["job"]["id"]
    base = dev_server.base_url
    async with await _signed_in_session(base, token_for(account_id)) as browser:
        async with browser.get(f"{base}/ui/jobs/{job_id}") as response:
            assert response.status == 200
            assert (response.headers["X-Frame-Options"], response.headers["Referrer-Policy"]) == ("DENY", "same-origin")
        async with browser.post(f"{base}/ui/jobs/{job_id}/pause", data={}, allow_redirects=False) as response:
            assert response.status == 403
            assert "expired or did not come from this dashboard" in await response.text()
        status, job = await api.call("GET", f"/api/jobs/{job_id}")
        assert (status, job["enabled"]) == (200, True)

        for path, code in (
            ("/ui/jobs?page=abc", 400),
            ("/ui/jobs?type=weekly", 400),
            ("/ui/executions?job=nope", 400),
            ("/ui/executions?status=exploded", 400),
            ("/ui/executions?since=0001-01-01T00:00%2B05:00", 400),
            ("/ui/dead-letters?before=9999-12-31T23:59:59_x", 400),
            ("/ui/executions/not-an-id", 404),
            (f"/ui/executions/{uuid.uuid4()}", 404),
            (f"/ui/jobs/{uuid.uuid4()}", 404),
            ("/ui/no/such/page", 404),
        ):
            async with browser.get(base + path) as response:
                assert response.status == code, (path, await response.text())
                assert "text/html" in response.headers["content-type"]

    async with await _signed_in_session(base, token_for(uuid.uuid4())) as stranger:
        async with stranger.get(f"{base}/ui/jobs/{job_id}") as response:
            assert response.status == 403
        async with stranger.get(f"{base}/ui/jobs") as response:
            assert job_id not in await response.text()


async def _signed_in_session(base: str, token: str) -> aiohttp.ClientSession:
    """A cookie-keeping HTTP client signed in to the dashboard, and the CSRF token its forms carry."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(base + "/ui/sign-in") as response:
        csrf = re.search(r'name="_csrf_token" value="([0-9a-f]+)"', await response.text())
    assert csrf is not None
    async with session.post(
        base + "/ui/sign-in", data={"token": token, "_csrf_token": csrf[1]}, allow_redirects=False
    ) as response:
        assert response.status == 303, await response.text()
    return session


async def _form_token(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        found = re.search(r'name="_csrf_token" value="([0-9a-f]+)"', await response.text())
    assert found is not None
    return found[1]


async def test_a_service_role_names_the_account_and_a_two_account_token_chooses_one(
    dev_server: DevServer, api: Api, receiver: Receiver, account_id: uuid.UUID
) -> None:
    base = dev_server.base_url
    form = {"name": "from the service role", "job_type": "cron", "cron_expression": "0 0 1 1 *", "timezone": "UTC",
            "is_active": "on", "action": "webhook", "url": receiver.url, "method": "POST"}  # fmt: skip
    session = await _signed_in_session(base, token_for(service_role=True))
    try:
        async with session.get(base + "/ui/jobs/new") as response:
            assert '<input id="f-account_id" type="text" name="account_id"' in await response.text()
        csrf = await _form_token(session, base + "/ui/jobs/new")
        async with session.post(base + "/ui/jobs/new", data=form | {"_csrf_token": csrf}) as response:
            assert response.status == 422 and "choose an account" in await response.text()
        data = form | {"_csrf_token": csrf, "account_id": str(account_id)}
        async with session.post(base + "/ui/jobs/new", data=data, allow_redirects=False) as response:
            assert response.status == 303, await response.text()
    finally:
        await session.close()
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert status == 200 and [j["name"] for j in page["items"]] == ["from the service role"]

    other = uuid.uuid4()
    session = await _signed_in_session(base, token_for(account_id, other))
    try:
        async with session.get(base + "/ui/jobs/new") as response:
            text = await response.text()
        assert f'<option value="{account_id}"' in text and f'<option value="{other}"' in text
        csrf = await _form_token(session, base + "/ui/jobs/new")
        stranger = {"_csrf_token": csrf, "account_id": str(uuid.uuid4()), "name": "elsewhere"}
        async with session.post(base + "/ui/jobs/new", data=form | stranger) as response:
            assert response.status == 422 and "you do not have access to this account" in await response.text()
    finally:
        await session.close()
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert [j["name"] for j in page["items"]] == ["from the service role"]


async def test_a_webhook_job_is_created_with_its_webhook_even_for_a_date_just_past(
    dev_server: DevServer, api: Api, receiver: Receiver, account_id: uuid.UUID
) -> None:
    # The form writes the webhook in the job's first event (no paused-then-enabled dance), so a date job whose time
    # has just passed is accepted, as through the API, and its occurrence fires within the misfire grace.
    base = dev_server.base_url
    past = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
    form = {"name": "just past", "job_type": "date", "scheduled_time": past, "timezone": "UTC", "is_active": "on",
            "action": "webhook", "url": receiver.url_for("/past"), "method": "POST"}  # fmt: skip
    session = await _signed_in_session(base, token_for(account_id))
    try:
        csrf = await _form_token(session, base + "/ui/jobs/new")
        async with session.post(
            base + "/ui/jobs/new", data=form | {"_csrf_token": csrf}, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
    finally:
        await session.close()
    await eventually(lambda: len(receiver.on("/past")) == 1, timeout=20, what="the past date's occurrence delivered")
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert status == 200 and [j["name"] for j in page["items"]] == ["just past"]


async def test_exclusions_callbacks_and_flow_control_typed_in_the_form_are_kept_and_shown_on_the_job_page(
    signed_in: Session, receiver: Receiver, account_id: uuid.UUID
) -> None:
    page, api = signed_in.page, signed_in.api
    now = datetime.now(UTC)
    first = now.replace(hour=9, minute=0, second=0, microsecond=0)
    first += timedelta(days=1) if first <= now else timedelta(0)
    second, third = first + timedelta(days=1), first + timedelta(days=2)
    shown = "%Y-%m-%d %H:%M:%S"
    # Every day at 09:00 UTC: the first day excluded by its date, the second by a rule on the wall clock.
    await _fill_common(page, "days off", "cron", "UTC")
    await page.fill("#f-cron_expression", "0 9 * * *")
    await page.fill("#f-exclusions", f"{first.date().isoformat()}\n0 9 {second.day} {second.month} *")
    await expect(page.locator("#schedule-preview .fire-times li").first).to_contain_text(third.strftime(shown))
    await page.fill("#f-url", receiver.url)
    await page.fill("#f-failure_callback_url", "https://example.com/dead-letters")
    await page.fill("#f-flow_key", "billing-api")
    await page.fill("#f-flow_parallelism", "10")
    await page.click("text=Create job")
    await expect(page.locator(".notice")).to_have_text("Job created.")
    await expect(page.locator("#job-exclusions")).to_contain_text(first.date().isoformat())
    await expect(page.locator("#job-callbacks")).to_contain_text("dead letters to https://example.com/dead-letters")
    await expect(page.locator("#job-flow")).to_have_text("billing-api at most 10 in flight")
    await expect(page.locator(".fire-times li").first).to_contain_text(third.strftime(shown))
    await screenshot(page, "job-page-exclusions")
    job_id = page.url.split("?")[0].rsplit("/", 1)[1]
    status, job = await api.call("GET", f"/api/jobs/{job_id}")
    assert status == 200 and job["next_run_at"] == third.strftime("%Y-%m-%dT%H:%M:%SZ"), job
    assert job["exclusions"] == {"dates": [first.date().isoformat()], "rules": [f"0 9 {second.day} {second.month} *"]}
    assert (job["callback_url"], job["failure_callback_url"]) == (None, "https://example.com/dead-letters")
    assert job["flow_control"] == {"key": "billing-api", "parallelism": 10, "rate": None, "period_seconds": 1.0}

    # Emptied in the form, they are gone.
    await page.goto(f"{signed_in.base}/ui/jobs/{job_id}/edit")
    await page.fill("#f-exclusions", "")
    await page.fill("#f-callback_url", "https://example.com/results")
    await page.fill("#f-failure_callback_url", "")
    await page.fill("#f-flow_parallelism", "")
    await page.fill("#f-flow_rate", "100")
    await page.fill("#f-flow_period_seconds", "60")
    await page.click("text=Save changes")
    await expect(page.locator(".fire-times li").first).to_contain_text(first.strftime(shown))
    await expect(page.locator("#job-exclusions")).to_have_count(0)
    await expect(page.locator("#job-callbacks")).to_have_text("results to https://example.com/results")
    await expect(page.locator("#job-flow")).to_have_text("billing-api at most 100 per 60 s")
    status, job = await api.call("GET", f"/api/jobs/{job_id}")
    assert job["exclusions"] is None and job["next_run_at"] == first.strftime("%Y-%m-%dT%H:%M:%SZ"), job
    assert (job["callback_url"], job["failure_callback_url"]) == ("https://example.com/results", None)
    assert job["flow_control"] == {"key": "billing-api", "parallelism": None, "rate": 100, "period_seconds": 60.0}


async def test_a_jobs_chain_is_shown_on_its_page_both_ways(signed_in: Session, account_id: uuid.UUID) -> None:
    page, api = signed_in.page, signed_in.api
    base = {"account_id": str(account_id), "type": 1}
    status, first = await api.call("POST", "/api/jobs", json=base | {"name": "extract", "schedule": "0 2 * * *"})
    assert status == 201, first
    status, second = await api.call(
        "POST", "/api/jobs", json=base | {"name": "load", "after": {"job_id": first["id"], "on": "completion"}}
    )
    assert status == 201, second
    await page.goto(f"{signed_in.base}/ui/jobs/{second['id']}")
    await expect(page.locator("#chain-upstream")).to_have_text(
        "Runs after extract, each time an occurrence of it ends."
    )
    await page.click("#chain-upstream a")
    await expect(page.locator("#chain-downstream li")).to_have_text(["load on completion"])
    await screenshot(page, "job-page-chain")
    # The jobs list and a chained job's edit page show it (its schedule is no time, and the form has no such kind).
    listed = await page.goto(f"{signed_in.base}/ui/jobs")
    assert listed is not None and listed.status == 200
    await expect(page.get_by_text("load", exact=True)).to_have_count(1)
    edit = await page.goto(f"{signed_in.base}/ui/jobs/{second['id']}/edit")
    assert edit is not None and edit.status == 200
    status, _ = await api.call("DELETE", f"/api/jobs/{first['id']}")
    assert status == 204
    await page.goto(f"{signed_in.base}/ui/jobs/{second['id']}")
    await expect(page.locator("#chain-upstream")).to_contain_text("(deleted: it will not run again)")
