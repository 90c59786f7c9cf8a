"""Authentication, health, metrics and API docs of scheduler-service-api.md, against `scheduler dev`."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import aiohttp
import jwt
import pytest
from openapi_spec_validator import validate

from tests.conftest import JWT_SECRET
from tests.e2e.conftest import DevServer, token_for
from tests.e2e.harness import Api
from tests.e2e.test_api_jobs import assert_error, create
from tests.e2e.test_api_webhooks_and_executions import add_webhook, disable_and_settle, executions
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def _claims(account: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "user-1", "aud": "authenticated", "exp": now + 600, "account_ids": [str(account)]} | overrides


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def bad_tokens(account: uuid.UUID) -> dict[str, str | None]:
    now = int(time.time())
    return {
        "no header": None,
        "empty bearer": "Bearer ",
        "basic scheme": "Basic dXNlcjpwYXNz",
        "garbage": "Bearer not.a.jwt",
        "expired": "Bearer " + jwt.encode(_claims(account, exp=now - 120), JWT_SECRET, algorithm="HS256"),
        "alg none": "Bearer " + _unsigned(_claims(account)),
        "other key": "Bearer " + jwt.encode(_claims(account), "another-secret-" + "x" * 40, algorithm="HS256"),
        "wrong audience": "Bearer " + jwt.encode(_claims(account, aud="anon"), JWT_SECRET, algorithm="HS256"),
        "no audience": "Bearer "
        + jwt.encode({k: v for k, v in _claims(account).items() if k != "aud"}, JWT_SECRET, algorithm="HS256"),
        "no exp": "Bearer "
        + jwt.encode({k: v for k, v in _claims(account).items() if k != "exp"}, JWT_SECRET, algorithm="HS256"),
        "HS512": "Bearer " + jwt.encode(_claims(account), JWT_SECRET, algorithm="HS512"),
        "tampered": "Bearer " + _tampered(jwt.encode(_claims(account), JWT_SECRET, algorithm="HS256"), account),
        # An RS256 token (key confusion: the api must not take another algorithm, whatever key it would try).
        "RS256": "Bearer " + _with_header({"alg": "RS256", "typ": "JWT"}, _claims(account), "c2lnbmF0dXJl"),
        "HS256 header on RS-style token": "Bearer "
        + _with_header({"alg": "HS256", "typ": "JWT", "jwk": {"kty": "oct", "k": "YWJj"}}, _claims(account), "eA"),
        "not yet valid": "Bearer " + jwt.encode(_claims(account, nbf=now + 3600), JWT_SECRET, algorithm="HS256"),
        "oversized": "Bearer "
        + jwt.encode(_claims(account, padding="x" * 6000), "another-secret-" + "x" * 40, algorithm="HS256"),
        "two segments": "Bearer abc.def",
        "not base64": "Bearer !!!.###.$$$",
        "payload not JSON": "Bearer " + _segments(b'{"alg":"HS256"}', b"not json", b"sig"),
    }


def _segments(*parts: bytes) -> str:
    return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts)


def _with_header(header: dict[str, Any], claims: dict[str, Any], signature: str) -> str:
    return f"{_segments(json.dumps(header).encode(), json.dumps(claims).encode())}.{signature}"


def _tampered(token: str, account: uuid.UUID) -> str:
    header, _, signature = token.split(".")
    forged = _claims(account, role="service_role")
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


PROTECTED = [
    ("GET", "/api/jobs?account_id={account}"),
    ("POST", "/api/jobs"),
    ("GET", "/api/jobs/{job}"),
    ("PUT", "/api/jobs/{job}"),
    ("DELETE", "/api/jobs/{job}"),
    ("PATCH", "/api/jobs/{job}/enable"),
    ("PATCH", "/api/jobs/{job}/disable"),
    ("GET", "/api/jobs/{job}/executions"),
    ("POST", "/webhooks"),
    ("GET", "/webhooks/{webhook}"),
    ("PUT", "/webhooks/{webhook}"),
    ("DELETE", "/webhooks/{webhook}"),
    ("GET", "/metrics"),
]


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_every_protected_endpoint_refuses_every_bad_token_with_401(
    dev_server: DevServer, api: Api, account_id: uuid.UUID
) -> None:
    job = await create(api, account_id)
    hook = await add_webhook(api, job["id"], "https://example.com/hook")
    status, job = await api.call("GET", f"/api/jobs/{job['id']}")
    async with aiohttp.ClientSession() as session:
        for label, header in bad_tokens(account_id).items():
            anonymous = Api(session, dev_server.base_url, {} if header is None else {"Authorization": header})
            for method, template in PROTECTED:
                path = template.format(account=account_id, job=job["id"], webhook=hook["id"])
                body = {"account_id": str(account_id), "name": "n", "schedule": "0 2 * * *", "type": 1}
                async with session.request(
                    method, dev_server.base_url + path, headers=anonymous.headers, json=body
                ) as response:
                    error = await response.json()
                    assert response.headers.get("WWW-Authenticate") == "Bearer", (label, path)
                assert_error(response.status, error, 401, "UNAUTHORIZED")
    status, still = await api.call("GET", f"/api/jobs/{job['id']}")
    assert (status, still) == (200, job)
    status, page = await api.call("GET", f"/api/jobs?account_id={account_id}")
    assert page["total"] == 1


async def test_a_token_far_larger_than_any_real_one_is_refused(dev_server: DevServer, account_id: uuid.UUID) -> None:
    huge = "Bearer " + jwt.encode(_claims(account_id, padding="x" * 70_000), JWT_SECRET, algorithm="HS256")
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{dev_server.base_url}/api/jobs?account_id={account_id}", headers={"Authorization": huge}
        ) as response,
    ):
        assert 400 <= response.status < 500, response.status


async def test_token_accounts_come_from_claims_in_either_documented_place(dev_server: DevServer) -> None:
    account = uuid.uuid4()
    now = int(time.time())
    base = {"sub": "u", "aud": "authenticated", "exp": now + 60}
    variants = [
        base | {"account_id": str(account)},
        base | {"account_ids": [str(account)]},
        base | {"app_metadata": {"account_id": str(account)}},
        base | {"app_metadata": {"account_ids": [str(uuid.uuid4()), str(account)]}},
    ]
    async with aiohttp.ClientSession() as session:
        for claims in variants:
            token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
            api = Api(session, dev_server.base_url, {"Authorization": f"Bearer {token}"})
            status, page = await api.call("GET", f"/api/jobs?account_id={account}")
            assert status == 200, (claims, page)
        nobody = jwt.encode(base, JWT_SECRET, algorithm="HS256")
        api = Api(session, dev_server.base_url, {"Authorization": f"Bearer {nobody}"})
        status, error = await api.call("GET", f"/api/jobs?account_id={account}")
        assert_error(status, error, 403, "FORBIDDEN")


async def test_health_needs_no_token_and_detailed_reports_each_dependency(dev_server: DevServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(dev_server.base_url + "/health") as response:
            assert (response.status, await response.json()) == (200, {"status": "healthy", "service": "scheduler"})
        async with session.get(dev_server.base_url + "/health/detailed") as response:
            body = await response.json()
            assert response.status == 200, body
    assert {k: body[k] for k in ("status", "service", "database", "nats", "scheduler_service")} == {
        "status": "healthy",
        "service": "scheduler",
        "database": "connected",
        "nats": "connected",
        "scheduler_service": "running",
    }
    assert body["scheduler_heartbeat_at"]


async def test_metrics_count_the_callers_accounts_only_in_json_and_prometheus(
    dev_server: DevServer, api: Api, account_id: uuid.UUID, receiver: Receiver
) -> None:
    receiver.statuses["/fails"] = 500
    # With its webhooks from the start: an occurrence due before them would be recorded skipped, with no duration.
    hooks = [{"url": receiver.url_for(path), "method": "POST"} for path in ("/ok", "/fails")]
    firing = await create(api, account_id, schedule="* * * * * *", name="firing", webhooks=hooks)
    await create(api, account_id, enabled=False, name="off")
    await create(api, account_id, name="on")

    async def settled() -> dict[str, Any] | None:
        page = await executions(api, firing["id"], "?limit=1000")
        finished = [e for e in page["items"] if e["status"] in ("success", "failure")]
        return page if len(finished) >= 4 else None

    await eventually(settled, timeout=20, what="four finished executions")
    page = await disable_and_settle(dev_server, api, firing["id"])
    items = page["items"]
    status, m = await api.call("GET", "/metrics")
    assert status == 200, m
    assert m["jobs"] == {"total": 3, "enabled": 1, "disabled": 2}
    success = sum(1 for e in items if e["status"] == "success")
    failure = sum(1 for e in items if e["status"] == "failure")
    runs = m["executions"]
    assert (runs["total"], runs["success"], runs["failure"]) == (len(items), success, failure)
    assert (runs["queued"], runs["running"], runs["timed_out"], runs["dead_letter"]) == (0, 0, 0, 0)
    assert runs["success_rate"] == round(100 * success / len(items), 2)
    # The average is over executions that have a duration: one withdrawn by the pause (a loaded box) has none.
    durations = [e["duration_ms"] for e in items if e["duration_ms"] is not None]
    assert runs["avg_duration_ms"] == round(sum(durations) / len(durations), 2)
    assert m["timestamp"]

    async with aiohttp.ClientSession() as session:
        stranger = Api(session, dev_server.base_url, {"Authorization": f"Bearer {token_for(uuid.uuid4())}"})
        status, theirs = await stranger.call("GET", "/metrics")
        assert (status, theirs["jobs"]["total"], theirs["executions"]["total"]) == (200, 0, 0)

        headers = {**api.headers, "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"}
        async with session.get(dev_server.base_url + "/metrics", headers=headers) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
        async with session.get(dev_server.base_url + "/metrics?format=prometheus", headers=api.headers) as response:
            assert await response.text() == text
    label = f'account_id="{account_id}"'
    assert f'scheduler_jobs{{{label},state="enabled"}} 1.0' in text
    assert f'scheduler_jobs{{{label},state="disabled"}} 2.0' in text
    assert f'scheduler_executions{{{label},status="success"}} {float(success)}' in text
    assert f'scheduler_executions{{{label},status="failure"}} {float(failure)}' in text
    assert f"scheduler_execution_duration_ms_sum{{{label}}} {float(sum(durations))}" in text
    assert text.count("account_id=") == text.count(label), "another account's series leaked"


async def test_docs_and_an_openapi_schema_that_describes_every_endpoint(dev_server: DevServer) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/docs", "/redoc"):
            async with session.get(dev_server.base_url + path) as response:
                assert response.status == 200
                assert "text/html" in response.headers["Content-Type"]
        async with session.get(dev_server.base_url + "/openapi.json") as response:
            schema = await response.json()
    validate(schema)
    operations = {(method.upper(), path): op for path, item in schema["paths"].items() for method, op in item.items()}
    documented = {
        ("POST", "/api/jobs"),
        ("GET", "/api/jobs"),
        ("GET", "/api/jobs/{job_id}"),
        ("PUT", "/api/jobs/{job_id}"),
        ("DELETE", "/api/jobs/{job_id}"),
        ("PATCH", "/api/jobs/{job_id}/enable"),
        ("PATCH", "/api/jobs/{job_id}/disable"),
        ("GET", "/api/jobs/{job_id}/executions"),
        ("POST", "/webhooks"),
        ("GET", "/webhooks/{webhook_id}"),
        ("PUT", "/webhooks/{webhook_id}"),
        ("DELETE", "/webhooks/{webhook_id}"),
        ("GET", "/health"),
        ("GET", "/health/detailed"),
        ("GET", "/metrics"),
    }
    assert documented <= set(operations)
    assert "BearerToken" in schema["components"]["securitySchemes"]
    error_ref = None
    for key, op in operations.items():
        if key not in documented:
            continue
        if key[1].startswith("/health"):
            assert op.get("security") in (None, []), key
            assert "security" not in schema or schema["security"] in ([], [{}])
            continue
        assert op["security"] == [{"BearerToken": []}], key
        for code in ("401", "403", "503"):
            content = op["responses"][code]["content"]["application/json"]["schema"]
            error_ref = error_ref or content
            assert content == error_ref, (key, code)
    assert operations[("GET", "/api/jobs/{job_id}")]["responses"]["404"]
    assert operations[("PUT", "/api/jobs/{job_id}")]["responses"]["409"]
    assert operations[("DELETE", "/api/jobs/{job_id}")]["responses"].keys() >= {"204", "404"}
    error_schema = schema["components"]["schemas"][error_ref["$ref"].rsplit("/", 1)[1]]
    assert set(error_schema["required"]) == {"detail", "error_code", "status_code"}
    listing = operations[("GET", "/api/jobs")]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["account_id"]["required"] is True
    assert (params["limit"]["schema"]["minimum"], params["limit"]["schema"]["maximum"]) == (1, 1000)
    status_param = next(
        p for p in operations[("GET", "/api/jobs/{job_id}/executions")]["parameters"] if p["name"] == "status"
    )
    assert "dead_letter" in json.dumps(status_param["schema"])
