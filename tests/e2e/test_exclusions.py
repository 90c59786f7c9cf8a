"""A job's exclusions on the primary API, against `scheduler dev`: set, shown, changed, cleared, refused when bad,
and what fires (nothing excluded fires or is recorded), down to a DST-change day: a backfill runs the days of this
year's two changes in Europe/Berlin for jobs with and without exclusions, and exactly the excluded occurrence is
missing."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import DevServer
from tests.e2e.harness import Api
from tests.e2e.test_api_jobs import assert_error
from tests.e2e.test_api_webhooks_and_executions import disable_and_settle
from tests.e2e.test_delivery_retries import create_job
from tests.e2e.test_nexus_api import nominal_of
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dev_server_env() -> dict[str, str]:
    """This year's DST changes are older than the default retention (30 days): a backfill may reach back to them."""
    return {"SCHEDULER_EXECUTION_RETENTION_DAYS": "400"}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _weekday_nines_after(t: datetime) -> list[datetime]:
    """The next weekday 09:00 UTC instants after `t`, worked out by hand."""
    found, day = [], t.replace(hour=9, minute=0, second=0, microsecond=0)
    while len(found) < 3:
        if day > t and day.weekday() < 5:
            found.append(day)
        day += timedelta(days=1)
    return found


async def test_excluded_dates_and_rules_move_the_next_run_and_can_be_changed_and_cleared(
    api: Api, account_id: uuid.UUID
) -> None:
    first, second, third = _weekday_nines_after(datetime.now(UTC))
    holiday = first.date().isoformat()
    job = await create_job(api, account_id, "0 9 * * 1-5", exclusions={"dates": [holiday, holiday], "rules": []})
    assert job["exclusions"] == {"dates": [holiday], "rules": []}  # repeats dropped
    assert _at(job["next_run_at"]) == second
    status, shown = await api.call("GET", f"/api/jobs/{job['id']}")
    assert status == 200 and shown["exclusions"] == job["exclusions"] and shown["next_run_at"] == job["next_run_at"]

    # A rule on the wall clock: the second day's 09:00 too.
    rule = f"0 9 {second.day} {second.month} *"
    status, changed = await api.call(
        "PUT", f"/api/jobs/{job['id']}", json={"exclusions": {"dates": [holiday], "rules": [rule]}}
    )
    assert status == 200, changed
    assert changed["exclusions"]["rules"] == [rule] and _at(changed["next_run_at"]) == third

    status, cleared = await api.call("PUT", f"/api/jobs/{job['id']}", json={"exclusions": None})
    assert status == 200 and cleared["exclusions"] is None and _at(cleared["next_run_at"]) == first

    plain = await create_job(api, account_id, "0 9 * * 1-5")
    assert plain["exclusions"] is None


async def test_the_nexus_api_shows_the_next_run_past_exclusions_and_its_updates_keep_them(
    api: Api, account_id: uuid.UUID
) -> None:
    """NEXUS has no field for them (its document is kept as written), but a job's exclusions still decide its next run
    there, and a NEXUS update, which cannot name them, leaves them as they were."""
    first, second, _ = _weekday_nines_after(datetime.now(UTC))
    exclusions = {"dates": [first.date().isoformat()], "rules": []}
    job = await create_job(api, account_id, "0 9 * * 1-5", exclusions=exclusions)
    status, page = await api.call("GET", "/api/v1/jobs/?job_type=cron")
    assert status == 200, page
    mirrored = next(j for j in page if j["uuid"] == job["id"])
    assert "exclusions" not in mirrored and _at(mirrored["next_run_at"]) == second

    status, updated = await api.call("PUT", f"/api/v1/jobs/{mirrored['id']}", json={"name": "renamed on NEXUS"})
    assert status == 200, updated
    assert _at(updated["next_run_at"]) == second
    status, shown = await api.call("GET", f"/api/jobs/{job['id']}")
    assert status == 200 and shown["name"] == "renamed on NEXUS" and shown["exclusions"] == exclusions


@pytest.mark.parametrize(
    ("exclusions", "in_detail"),
    [
        ({"rules": ["61 * * * *"]}, "exclusion"),
        ({"rules": ["* * * * *"]}, "exclusions remove every occurrence"),
        ({"dates": ["2026-02-30"]}, "exclusions"),
        ({"dates": [(date(2030, 1, 1) + timedelta(days=i)).isoformat() for i in range(1001)]}, "exclusions"),
        ({"rules": ["* * * * *"] * 21}, "exclusions"),
        ({"days": ["2026-12-25"]}, "days"),
    ],
)
async def test_bad_exclusions_are_refused_saying_why(
    api: Api, account_id: uuid.UUID, exclusions: dict[str, Any], in_detail: str
) -> None:
    body = {"account_id": str(account_id), "name": "x", "schedule": "0 9 * * *", "type": 1, "exclusions": exclusions}
    status, error = await api.call("POST", "/api/jobs", json=body)
    assert_error(status, error, 400, "VALIDATION_ERROR")
    assert in_detail in error["detail"], error
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert status == 200 and page["total"] == 0, "nothing was created"


async def test_an_excluded_second_neither_fires_nor_is_recorded(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    hooks = [{"url": receiver.url_for("/odd"), "method": "POST"}]
    # Every second, but even seconds are excluded (a 6-field rule).
    job = await create_job(api, account_id, "* * * * * *", exclusions={"rules": ["*/2 * * * * *"]}, webhooks=hooks)
    await eventually(lambda: len(receiver.on("/odd")) >= 4, timeout=20, what="four deliveries")
    page = await disable_and_settle(dev_server, api, job["id"])
    delivered = [nominal_of(call.headers["webhook-id"]) for call in receiver.on("/odd")]
    assert delivered and all(t.second % 2 == 1 for t in delivered), delivered
    recorded = [_at(e["scheduled_at"]) for e in page["items"]]
    assert recorded and all(t.second % 2 == 1 for t in recorded), recorded
    # Consecutive odd seconds two apart: the even one between them was not an occurrence at all.
    ordered = sorted(set(delivered))
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(ordered)), ordered


BERLIN_SPRING_FORWARD = datetime(2026, 3, 29, tzinfo=UTC)  # 02:00 CET became 03:00 CEST
BERLIN_FALL_BACK = datetime(2026, 10, 25, tzinfo=UTC)  # 03:00 CEST became 02:00 CET: 02:30 happened twice


async def _backfilled(
    api: Api, account_id: uuid.UUID, receiver: Receiver, day: datetime, exclusions: dict[str, Any] | None
) -> set[datetime]:
    """The nominal times a daily 02:30 Europe/Berlin job delivered, backfilled from the day before `day` to the day
    after."""
    path = f"/dst-{uuid.uuid4().hex[:8]}"
    job = await create_job(api, account_id, "30 2 * * *", timezone="Europe/Berlin", exclusions=exclusions,
                           webhooks=[{"url": receiver.url_for(path)}])  # fmt: skip
    body = {"start": (day - timedelta(days=1)).isoformat(), "end": (day + timedelta(days=2)).isoformat(),
            "per_second": 100}  # fmt: skip
    status, backfill = await api.call("POST", f"/api/jobs/{job['id']}/backfills", json=body)
    assert status == 202, backfill

    async def ended() -> dict[str, Any] | None:
        status, found = await api.call("GET", f"/api/jobs/{job['id']}/backfills/{backfill['id']}")
        assert status == 200, found
        return found if found["status"] == "completed" else None  # type: ignore[no-any-return]

    done = await eventually(ended, timeout=20, what="the backfill")
    await eventually(lambda: len(receiver.on(path)) >= done["requested"], timeout=20, what="its deliveries")
    delivered = [nominal_of(c.headers["webhook-id"]) for c in receiver.on(path)]
    assert len(delivered) == len(set(delivered)) == backfill["total"], delivered
    return set(delivered)


async def test_an_exclusion_on_a_dst_change_day_removes_exactly_the_excluded_occurrence(
    api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    # Spring forward: 02:30 does not exist that day, so the occurrence fires at 03:00 CEST (01:00 UTC).
    everything = await _backfilled(api, account_id, receiver, BERLIN_SPRING_FORWARD, None)
    moved = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert everything == {datetime(2026, 3, 28, 1, 30, tzinfo=UTC), moved, datetime(2026, 3, 30, 0, 30, tzinfo=UTC)}
    # A rule matches the wall-clock time the occurrence fires at: 03:00 removes that day's, 02:00 every other day's.
    at_three = await _backfilled(api, account_id, receiver, BERLIN_SPRING_FORWARD, {"rules": ["* 3 * * *"]})
    assert everything - at_three == {moved}
    at_two = await _backfilled(api, account_id, receiver, BERLIN_SPRING_FORWARD, {"rules": ["* 2 * * *"]})
    assert at_two == {moved}

    # Fall back: 02:30 happens twice and fires the first time (00:30 UTC); the day's date removes exactly that one.
    everything = await _backfilled(api, account_id, receiver, BERLIN_FALL_BACK, None)
    once = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert everything == {datetime(2026, 10, 24, 0, 30, tzinfo=UTC), once, datetime(2026, 10, 26, 1, 30, tzinfo=UTC)}
    without_the_day = await _backfilled(api, account_id, receiver, BERLIN_FALL_BACK, {"dates": ["2026-10-25"]})
    assert everything - without_the_day == {once}
