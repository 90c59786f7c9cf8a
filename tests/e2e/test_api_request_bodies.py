"""Request bodies at their documented limits, on both API surfaces and the dashboard's forms: nesting depth (64
levels), size (1 MiB) and, on /api/jobs and /webhooks, strict types. Bad bodies are a 4xx in the format of the API
hit (never a 500, never a traceback in the log), and a caller without a token hears 401 whatever its body.

The api and projector run in this test's event loop on real NATS and Postgres (no ticker, so nothing fires).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from shared.settings import Settings
from tests.e2e.conftest import token_for
from tests.e2e.harness import Api, api_client, running

pytestmark = pytest.mark.e2e

MAX_DEPTH = 64
MAX_BODY_BYTES = 1024 * 1024
# Just past the limit; well under the interpreter's recursion limit (where decoders start to fail on their own);
# at it; far beyond it.
TOO_DEEP = (MAX_DEPTH + 1, 900, 1000, 5000)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def nested_text(depth: int) -> bytes:
    """`depth` objects inside one another, written out (json.dumps itself would overflow the stack)."""
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.fixture
async def served(settings: Settings, account_id: uuid.UUID) -> AsyncIterator[tuple[Api, dict[str, str]]]:
    """A client with a token for `account_id`, and the paths of a job and a webhook of that account."""
    async with (
        running(settings, ["api", "projector"]),
        api_client(settings.api_port, {"Authorization": f"Bearer {token_for(account_id)}"}) as api,
    ):
        status, job = await api.call(
            "POST", "/api/jobs", json={"account_id": str(account_id), "name": "j", "schedule": "0 2 * * *", "type": 1}
        )
        assert status == 201, job
        status, hook = await api.call(
            "POST", "/webhooks", json={"job_id": job["id"], "url": "https://example.com/h", "method": "POST"}
        )
        assert status == 201, hook
        status, nexus = await api.call(
            "POST", "/api/v1/jobs/", json={"name": "n", "cron_expression": "0 2 * * *", "task_name": "t"}
        )
        assert status == 201, nexus
        yield api, {"job": job["id"], "webhook": hook["id"], "nexus": str(nexus["id"])}


PRIMARY = [
    ("POST", "/api/jobs"),
    ("PUT", "/api/jobs/{job}"),
    ("POST", "/webhooks"),
    ("PUT", "/webhooks/{webhook}"),
    ("POST", "/api/dead-letters/redrive"),
    ("POST", "/api/signing-secret/rotate"),
]
NEXUS = [
    ("POST", "/api/v1/jobs/"),
    ("PUT", "/api/v1/jobs/{nexus}"),
    ("POST", "/api/v1/jobs/{nexus}/execute"),
]
NEXUS_OPEN = [("POST", "/api/v1/cron/validate")]
# Routes that take no body ignore one.
BODYLESS = [("PATCH", "/api/jobs/{job}/disable"), ("POST", "/api/v1/jobs/{nexus}/pause")]


async def send(api: Api, method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} | (api.headers if headers is None else headers)
    async with api.session.request(method, api.base + path, data=body, headers=headers) as response:
        text = await response.text()
        try:
            return response.status, (await response.json(content_type=None)) if text else None
        except ValueError:
            return response.status, text


def assert_primary_400(status: int, body: Any, what: object) -> None:
    assert status == 400, (what, status, body)
    assert body["error_code"] == "VALIDATION_ERROR" and body["status_code"] == 400, (what, body)


def assert_nexus_400(status: int, body: Any, what: object) -> None:
    assert status == 400, (what, status, body)
    assert set(body) == {"detail"} and isinstance(body["detail"], str), (what, body)


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info or "RecursionError" in r.getMessage()]
    assert not bad, [r.getMessage() for r in bad]


async def test_deeply_nested_bodies_are_a_400_on_every_route_of_both_surfaces(
    served: tuple[Api, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    api, ids = served
    for depth in TOO_DEEP:
        body = nested_text(depth)
        for method, template in PRIMARY:
            status, answer = await send(api, method, template.format(**ids), body)
            assert_primary_400(status, answer, (depth, template))
            assert "nested" in answer["detail"], answer
        for method, template in NEXUS + NEXUS_OPEN:
            status, answer = await send(api, method, template.format(**ids), body)
            assert_nexus_400(status, answer, (depth, template))
            assert "nested" in answer["detail"], answer
        # Nested inside an otherwise valid body too.
        inside = b'{"name": "deep", "cron_expression": "0 2 * * *", "task_name": "t", "metadata": '
        status, answer = await send(api, "POST", "/api/v1/jobs/", inside + nested_text(depth - 1) + b"}")
        assert_nexus_400(status, answer, (depth, "metadata"))
    for method, template in BODYLESS:
        status, answer = await send(api, method, template.format(**ids), nested_text(5000))
        assert status == 200, (template, status, answer)
    assert_no_traceback(caplog)


async def test_a_body_at_the_depth_limit_is_accepted(served: tuple[Api, dict[str, str]], account_id: uuid.UUID) -> None:
    api, _ = served
    # The body is level 1, metadata level 2: the innermost value sits at the 64th level.
    body = {"name": "at the limit", "cron_expression": "0 2 * * *", "task_name": "t", "metadata": nested(MAX_DEPTH - 1)}
    status, job = await api.call("POST", "/api/v1/jobs/", json=body)
    assert status == 201, job
    assert job["metadata"] == nested(MAX_DEPTH - 1)


async def test_a_caller_without_a_token_hears_401_whatever_its_body(
    served: tuple[Api, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    api, ids = served
    for body in (nested_text(1000), nested_text(MAX_DEPTH + 1), b"{not json", b"x" * (MAX_BODY_BYTES + 1)):
        for method, template in PRIMARY + NEXUS:
            status, answer = await send(api, method, template.format(**ids), body, headers={})
            assert status == 401, (template, body[:20], status, answer)
    # No token needed there: the body's own error.
    status, answer = await send(api, "POST", "/api/v1/cron/validate", nested_text(1000), headers={})
    assert_nexus_400(status, answer, "cron/validate")
    assert_no_traceback(caplog)


async def test_a_body_over_one_mebibyte_is_a_413_on_every_route(served: tuple[Api, dict[str, str]]) -> None:
    api, ids = served
    padding = b" " * (MAX_BODY_BYTES + 1 - len(b'{"name": "x"}'))
    body = b'{"name": "x"}' + padding
    assert len(body) == MAX_BODY_BYTES + 1
    for method, template in PRIMARY:
        status, answer = await send(api, method, template.format(**ids), body)
        assert status == 413 and answer["error_code"] == "PAYLOAD_TOO_LARGE", (template, answer)
    for method, template in NEXUS + NEXUS_OPEN:
        status, answer = await send(api, method, template.format(**ids), body)
        assert status == 413 and set(answer) == {"detail"}, (template, answer)
    # Exactly at the limit is read (and judged on its content).
    status, answer = await send(api, "POST", "/api/v1/cron/validate", body[:-1])
    assert status == 422, answer


DASHBOARD_POSTS = [
    "/ui/jobs/new",
    "/ui/jobs/{job}/edit",
    "/ui/schedule/preview",
    "/ui/jobs/{job}/run",
    "/ui/jobs/{job}/pause",
    "/ui/jobs/{job}/resume",
    "/ui/jobs/{job}/delete",
    "/ui/dead-letters/redrive",
    "/ui/sign-out",
    "/ui/sign-in",
]


async def test_dashboard_forms_refuse_deep_json_fields_and_huge_bodies(
    served: tuple[Api, dict[str, str]], account_id: uuid.UUID, caplog: pytest.LogCaptureFixture
) -> None:
    api, ids = served
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(api.base + "/ui/sign-in") as response:
            csrf = re.search(r'name="_csrf_token" value="([0-9a-f]+)"', await response.text())
        assert csrf is not None
        token = api.headers["Authorization"].removeprefix("Bearer ")
        async with session.post(
            api.base + "/ui/sign-in", data={"token": token, "_csrf_token": csrf[1]}, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
        async with session.get(api.base + "/ui/jobs/new") as response:
            found = re.search(r'name="_csrf_token" value="([0-9a-f]+)"', await response.text())
        assert found is not None
        form = {"_csrf_token": found[1], "name": "deep", "job_type": "cron", "cron_expression": "0 2 * * *",
                "timezone": "UTC", "is_active": "on", "action": "task", "task_name": "t"}  # fmt: skip
        for depth in TOO_DEEP:
            for field, extra in (("task_kwargs", {}), ("task_args", {}), ("calendar_rule", {"job_type": "calendar"})):
                text = nested_text(depth).decode()
                if field == "task_args":
                    text = "[" * depth + "]" * depth
                async with session.post(api.base + "/ui/jobs/new", data=form | extra | {field: text}) as response:
                    page = await response.text()
                    assert response.status in (400, 422), (depth, field, response.status, page[-500:])
                    assert "nested" in page, (depth, field, page[-500:])
        # The edit form and the live schedule preview read the same fields the same way.
        deep = nested_text(1000).decode()
        edit = form | {"name": "j", "task_kwargs": deep}
        async with session.post(f"{api.base}/ui/jobs/{ids['job']}/edit", data=edit) as response:
            assert response.status == 422 and "nested" in await response.text(), response.status
        preview = form | {"job_type": "calendar", "calendar_rule": deep}
        async with session.post(api.base + "/ui/schedule/preview", data=preview) as response:
            assert response.status < 500 and "nested" in await response.text(), response.status
        huge = form | {"description": "x" * MAX_BODY_BYTES}
        for path in DASHBOARD_POSTS:
            async with session.post(api.base + path.format(**ids), data=huge) as response:
                assert response.status == 413, (path, response.status)
                assert "text/html" in response.headers["Content-Type"], path
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert status == 200 and "deep" not in [j["name"] for j in page["items"]], page
    assert_no_traceback(caplog)


async def test_the_primary_surface_refuses_mistyped_fields_the_nexus_surface_coerces_numeric_strings(
    served: tuple[Api, dict[str, str]], account_id: uuid.UUID
) -> None:
    api, ids = served
    job = {"account_id": str(account_id), "name": "typed", "schedule": "0 2 * * *", "type": 1}
    mistyped = [
        ("POST", "/api/jobs", job | {"type": "1"}, "type"),
        ("POST", "/api/jobs", job | {"type": 1.0}, "type"),
        ("POST", "/api/jobs", job | {"enabled": "true"}, "enabled"),
        ("POST", "/api/jobs", job | {"enabled": 1}, "enabled"),
        ("POST", "/api/jobs", job | {"timeout_seconds": "30"}, "timeout_seconds"),
        ("POST", "/api/jobs", job | {"retry_policy": {"max_attempts": "3"}}, "retry_policy.max_attempts"),
        ("PUT", f"/api/jobs/{ids['job']}", {"type": "2"}, "type"),
        ("PUT", f"/api/jobs/{ids['job']}", {"enabled": "false"}, "enabled"),
        ("PUT", f"/webhooks/{ids['webhook']}", {"enabled": "true"}, "enabled"),
        ("POST", "/api/signing-secret/rotate", {"account_id": str(account_id), "grace_seconds": "60"}, "grace_seconds"),
    ]
    for method, path, body, field in mistyped:
        status, answer = await api.call(method, path, json=body)
        assert_primary_400(status, answer, (path, body))
        assert field in answer["detail"], answer
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert sorted(j["name"] for j in page["items"]) == ["j", "n"]
    status, unchanged = await api.call("GET", f"/api/jobs/{ids['job']}")
    assert (unchanged["type"], unchanged["enabled"]) == (1, True), unchanged

    # NEXUS keeps its reference server's lax coercion of numeric strings.
    status, created = await api.call(
        "POST", "/api/v1/jobs/",
        json={"name": "lax", "cron_expression": "0 2 * * *", "task_name": "t", "max_retries": "4", "priority": "7"},
    )  # fmt: skip
    assert status == 201, created
    assert (created["max_retries"], created["priority"]) == (4, 7)


async def test_the_openapi_document_lists_400_and_413_on_every_operation_that_takes_a_body(
    served: tuple[Api, dict[str, str]],
) -> None:
    api, _ = served
    status, schema = await api.call("GET", "/openapi.json")
    assert status == 200
    with_body = [
        (method.upper(), path, set(op["responses"]))
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if "requestBody" in op
    ]
    assert len(with_body) >= len(PRIMARY + NEXUS + NEXUS_OPEN), with_body
    assert not [(m, p, codes) for m, p, codes in with_body if not {"400", "413"} <= codes]
