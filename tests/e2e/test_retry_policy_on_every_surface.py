"""A partial update never loses what it does not name: one retry field changed through each surface that can change
it (the primary API, NEXUS, the dashboard's edit form, posted as a browser posts it), and the whole retry policy,
and the rest of the job, read back after each."""

from __future__ import annotations

import uuid
from html.parser import HTMLParser
from typing import Any

import pytest

from tests.e2e.conftest import DevServer, token_for
from tests.e2e.harness import Api
from tests.e2e.test_dashboard import _signed_in_session
from tests.e2e.test_nexus_api import nexus_id
from tests.receiver import Receiver

pytestmark = pytest.mark.e2e


class JobFormReader(HTMLParser):
    """The fields of the dashboard's job form as a browser would post them, as the page shows them."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._in_form = False
        self._select: str | None = None
        self._first_option: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self._in_form = a.get("id") == "job-form"
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            if a.get("type") not in ("checkbox", "radio"):
                self.fields[name] = a.get("value") or ""
            elif "checked" in a:
                self.fields[name] = a.get("value") or "on"
        elif tag == "select" and name:
            self._select, self._first_option = name, None
        elif tag == "option" and self._select is not None:
            value = a.get("value") or ""
            self._first_option = self._first_option if self._first_option is not None else value
            if "selected" in a:
                self.fields[self._select] = value
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select" and self._select is not None:
            if self._select not in self.fields and self._first_option is not None:
                self.fields[self._select] = self._first_option
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.fields[self._textarea] += data


async def test_one_retry_field_changed_on_each_surface_keeps_the_rest_of_the_policy(
    dev_server: DevServer, api: Api, receiver: Receiver, account_id: uuid.UUID
) -> None:
    policy = {
        "max_attempts": 5,
        "backoff_seconds": 10.0,
        "backoff_type": "linear",
        "jitter": 0.3,
        "max_backoff_seconds": 600.0,
    }
    body = {
        "account_id": str(account_id),
        "name": "partial",
        "schedule": "0 0 1 1 *",
        "type": 1,
        "retry_policy": policy,
        "timeout_seconds": 7,
        "misfire_policy": {"policy": "fire_latest", "grace_seconds": None},
        "overlap_policy": "skip",
        "jitter_seconds": 1.5,
        "webhooks": [{"url": receiver.url_for("/partial")}],
    }
    status, created = await api.call("POST", "/api/jobs", json=body)
    assert status == 201, created
    path = f"/api/jobs/{created['id']}"
    status, before = await api.call("GET", path)
    assert status == 200, before
    expected = dict(policy)

    async def read_back(surface: str) -> None:
        status, job = await api.call("GET", path)
        assert status == 200, job
        assert job["retry_policy"] == expected, surface
        unchanged = ("retry_policy", "updated_at", "webhooks")
        assert {k: v for k, v in job.items() if k not in unchanged} == {
            k: v for k, v in before.items() if k not in unchanged
        }, surface

    # The primary API takes a retry policy whole: the policy as read, with one field changed.
    status, job = await api.call("GET", path)
    status, body = await api.call("PUT", path, json={"retry_policy": job["retry_policy"] | {"jitter": 0.5}})
    assert status == 200, body
    expected["jitter"] = 0.5
    await read_back("primary API")
    status, body = await api.call("PUT", path, json={"name": "partial"})
    assert status == 200, body
    await read_back("primary API, another field")

    # NEXUS names one field of it.
    status, body = await api.call("PUT", f"/api/v1/jobs/{await nexus_id(api, created['id'])}", json={"retry_delay": 20})
    assert status == 200, body
    expected["backoff_seconds"] = 20.0
    await read_back("NEXUS")

    # The dashboard's form posts every field it shows; one is changed.
    edit = f"{dev_server.base_url}/ui/jobs/{created['id']}/edit"
    async with await _signed_in_session(dev_server.base_url, token_for(account_id)) as browser:
        async with browser.get(edit) as response:
            assert response.status == 200
            form = JobFormReader()
            form.feed(await response.text())
        assert (form.fields["max_retries"], form.fields["retry_delay"], form.fields.get("retry_backoff")) == (
            "4",
            "20",
            "on",
        )
        posted: dict[str, Any] = form.fields | {"max_retries": "1"}
        async with browser.post(edit, data=posted, allow_redirects=False) as response:
            assert response.status == 303, await response.text()
    expected["max_attempts"] = 2
    await read_back("dashboard")
