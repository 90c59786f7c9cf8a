"""The SSRF guard: webhook targets outside the public internet are refused when created and again when delivered.

A "victim" receiver listens on 127.0.0.1 throughout; the pass criterion is that it is never called.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from scheduler.runner import run_services
from shared.settings import Settings
from tests.e2e.harness import api_client
from tests.e2e.test_api_jobs import assert_error, create
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def services(*runs: tuple[Settings, list[str]]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = []
    for settings, names in runs:
        tasks.append(asyncio.create_task(run_services(settings, names, stop)))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


@asynccontextmanager
async def redirector(host: str, to: str) -> AsyncIterator[str]:
    """A receiver on `host` that answers every call with a redirect to `to`."""

    async def redirect(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": to})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://{host}:{port}/hook"
    finally:
        await runner.cleanup()


def refused_targets(port: int) -> dict[str, str]:
    """Target URL -> the words the refusal must contain."""
    return {
        f"http://127.0.0.1:{port}/hook": "loopback",
        f"http://[::1]:{port}/hook": "loopback",
        "http://10.0.0.1/hook": "private",
        "http://172.16.0.1/hook": "private",
        "http://192.168.1.1/hook": "private",
        "http://169.254.169.254/latest/meta-data/": "link-local",
        "http://100.64.0.1/hook": "carrier-grade NAT",
        f"http://0.0.0.0:{port}/hook": "unspecified",
        f"http://[::ffff:127.0.0.1]:{port}/hook": "loopback",
        f"http://2130706433:{port}/hook": "loopback",  # 127.0.0.1 as one decimal number
        f"http://0177.0.0.1:{port}/hook": "loopback",  # 127.0.0.1 in octal
        f"http://localhost:{port}/hook": "loopback",  # a name that resolves to loopback
    }


async def test_special_targets_are_a_clear_400_at_creation(
    settings: Settings, auth_headers: dict[str, str], account_id: uuid.UUID, receiver: Receiver
) -> None:
    guarded = settings.replaced(egress_allow="")
    async with services((guarded, ["api", "projector"])), api_client(guarded.api_port, auth_headers) as api:
        job = await create(api, account_id)
        for url, why in refused_targets(receiver.port).items():
            status, error = await api.call(
                "POST", "/webhooks", json={"job_id": job["id"], "url": url, "method": "POST"}
            )
            assert_error(status, error, 400, "VALIDATION_ERROR")
            assert "egress policy" in error["detail"] and why in error["detail"], (url, error)
        status, hook = await api.call(
            "POST", "/webhooks", json={"job_id": job["id"], "url": "https://example.com/h", "method": "POST"}
        )
        assert status == 201, hook
        status, error = await api.call("PUT", f"/webhooks/{hook['id']}", json={"url": "http://169.254.169.254/"})
        assert_error(status, error, 400, "VALIDATION_ERROR")
    assert receiver.calls == []


async def test_special_targets_are_refused_again_at_delivery_and_redirects_are_not_followed(
    settings: Settings, auth_headers: dict[str, str], account_id: uuid.UUID, receiver: Receiver
) -> None:
    """The api allows loopback (as `scheduler dev` does) but the dispatcher does not: what the dispatcher connects
    to is what counts. Only 127.0.0.2, where a redirector listens, is allowed to it."""
    lenient = settings.replaced(egress_allow="127.0.0.0/8,::1")
    strict = settings.replaced(egress_allow="127.0.0.2/32")
    victim = receiver.url_for("/hook")
    async with (
        redirector("127.0.0.2", victim) as redirecting,
        services((lenient, ["api", "projector", "ticker"]), (strict, ["dispatcher"])),
        api_client(lenient.api_port, auth_headers) as api,
    ):
        job = await create(api, account_id, schedule="0 0 1 1 *")
        targets = {
            victim: "127.0.0.1 is a loopback address",
            f"http://localhost:{receiver.port}/hook": "loopback address",
            f"http://[::ffff:127.0.0.1]:{receiver.port}/hook": "loopback",
            redirecting: "HTTP 302",
        }
        hooks = {}
        for url in targets:
            status, hook = await api.call("POST", "/webhooks", json={"job_id": job["id"], "url": url, "method": "POST"})
            assert status == 201, hook
            hooks[hook["id"]] = url
        status, body = await api.call("PUT", f"/api/jobs/{job['id']}", json={"schedule": "* * * * * *"})
        assert status == 200, body

        async def one_each() -> list[dict[str, Any]] | None:
            status, page = await api.call("GET", f"/api/jobs/{job['id']}/executions?limit=1000")
            assert status == 200, page
            # A refused target goes to dead letter at once (after its failure is recorded): wait for that too.
            done = {hook: ("failure", "dead_letter") if url == redirecting else ("dead_letter",)
                    for hook, url in hooks.items()}  # fmt: skip
            seen = {e["webhook_id"] for e in page["items"] if e["status"] in done[e["webhook_id"]]}
            return page["items"] if seen == set(hooks) else None

        items = await eventually(one_each, timeout=30, what="an attempt at every target")
        status, _ = await api.call("PATCH", f"/api/jobs/{job['id']}/disable")
        assert status == 200
    for execution in items:
        if execution["status"] not in ("failure", "dead_letter"):
            continue
        url = hooks[execution["webhook_id"]]
        assert targets[url] in execution["error"], (url, execution)
        if url != redirecting:
            assert execution["status"] == "dead_letter", "a refused target is final: retrying cannot help"
            assert "egress policy" in execution["error"]
    assert receiver.calls == [], "nothing reached the loopback listener"
