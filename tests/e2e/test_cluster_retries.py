"""Scenario 6 of the cluster's faults: a command whose publish times out while its write lands, and the client's
retry. The JOBS stream's leader is the server the api is connected to; its two followers are frozen (SIGSTOP), so
the leader stores the command's event but cannot commit it, and the api's publish times out (a 503 that says the
change may still be applied). The followers resumed, the write commits. The client then retries, as a client that
heard a 503 does: a create with the same Idempotency-Key must answer the job that landed instead of making a
second one, and a pause, which sets a state, must find it set and append nothing. A command's read before its write
(the create's look for its key's job, the pause's load of the job) may time out in the fault too, and then nothing
was written: the create is tried again (up to three times) until one landed; the pause's figures say which it was.

Jobs fire every second across the cluster throughout, under the fault suite's oracle (see test_cluster_faults.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError

from scheduler.embedded import EmbeddedNats
from services.api.core.idempotency import request_key
from shared.bus.connection import servers
from shared.contracts.codec import decode_job_event
from shared.contracts.jobs import JobCreated, JobEvent, JobPaused
from shared.contracts.subjects import Names
from shared.settings import Settings
from tests.e2e.harness import Api
from tests.e2e.on_cluster import OnCluster, lead, recovery, report, settle_and_check, wait_on_time
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The api's JetStream publish gives up after 5 s (nats-py's default); a 503 that took longer came from it.
PUBLISH_TIMEOUT_SECONDS = 5.0


def connections_named(server: EmbeddedNats, name: str) -> int:
    """How many client connections named `name` the server holds (its /connz monitoring page)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.monitor_port}/connz?limit=4096", timeout=5) as page:
        return sum(1 for c in json.load(page).get("connections") or [] if c.get("name") == name)


async def api_server(on: OnCluster) -> EmbeddedNats:
    """The server the api's NATS connection is on."""

    async def found() -> EmbeddedNats | None:
        holding = [s for s in on.cluster.servers if await asyncio.to_thread(connections_named, s, "api")]
        return holding[0] if len(holding) == 1 else None

    return await eventually(found, timeout=30, what="the api's server")


async def job_events(settings: Settings, job_id: uuid.UUID) -> list[JobEvent]:
    """Every event of the job, in order, as the JOBS stream holds them; read again while the cluster settles (just
    after servers resume, JetStream may answer 503 for a moment)."""
    names = Names(settings.namespace)

    async def read() -> tuple[list[JobEvent]] | None:
        nc = await nats.connect(servers(settings.nats_url))
        try:
            js, seq = nc.jetstream(), 1
            events: list[JobEvent] = []
            while True:
                subject = names.job_lookup_subject(job_id)
                msg = await js.get_msg(names.jobs_stream, seq=seq, subject=subject, next=True)
                assert msg.data is not None and msg.seq is not None
                events.append(decode_job_event(msg.data))
                seq = msg.seq + 1
        except NotFoundError:
            return (events,)
        except nats.errors.Error:
            return None
        finally:
            await nc.close()

    (events,) = await eventually(read, timeout=30, what=f"the events of job {job_id}")
    return events


@asynccontextmanager
async def followers_frozen(on: OnCluster) -> AsyncIterator[None]:
    """Inside the block, the JOBS stream is led by the server the api is connected to and its two followers are
    stopped (SIGSTOP): the api's publishes are stored and cannot be committed. Resumed after it."""
    leader = await api_server(on)
    assert leader.name is not None
    await lead(on.settings, Names(on.settings.namespace).jobs_stream, leader.name)
    others = [s for s in on.cluster.servers if s is not leader]
    on.touched.extend(others)
    for server in others:
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for server in others:
            assert server.pid is not None
            os.kill(server.pid, signal.SIGCONT)


async def timed_out(api: Api, method: str, path: str, **kwargs: Any) -> float:
    """Send a command that must time out in the event store: a 503 that says it may still be applied; its time."""
    started = time.monotonic()
    status, error = await api.call(method, path, **kwargs)
    took = time.monotonic() - started
    assert status == 503 and error["error_code"] == "SERVICE_UNAVAILABLE", (status, error)
    assert "may still be applied" in error["detail"], error
    assert took >= PUBLISH_TIMEOUT_SECONDS - 0.5, f"refused at once ({took:.1f} s), not timed out: {error}"
    return took


async def timed_out_create(on: OnCluster, api: Api, attempt: int) -> tuple[uuid.UUID, float, bool]:
    """A keyed create sent into the fault (a 503 after its publish timed out), retried at once inside it (another
    503, not a 409), then retried after it until answered: the job the key names, once. Returns the job, the seconds
    to the first 503, and whether a write made during the fault landed (the job's event is older than the retry
    after it): the case the key is for. Otherwise (a read timed out before anything was written) the retry made it."""
    name = f"created once {attempt}"
    body = json.dumps({"account_id": str(on.account_id), "name": name, "schedule": "0 0 0 1 1 *", "type": 1}).encode()
    key = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
    job_id = request_key(on.account_id, key["Idempotency-Key"], body).job_id
    async with followers_frozen(on):
        took = await timed_out(api, "POST", "/api/jobs", data=body, headers=key)
        status, error = await api.call("POST", "/api/jobs", data=body, headers=key)
        assert status == 503 and error["error_code"] == "SERVICE_UNAVAILABLE", (status, error)
    retried_at = datetime.now(UTC)

    async def retried() -> dict[str, Any] | None:
        status, job = await api.call("POST", "/api/jobs", data=body, headers=key)
        return job if status == 201 else None  # a 503 while the cluster settles is retried, as a client would

    job = await eventually(retried, timeout=30, what="the retried create answered")
    assert job["id"] == str(job_id), job
    status, page = await api.call("GET", f"/api/jobs?account_id={on.account_id}&limit=1000")
    assert status == 200
    assert [j["id"] for j in page["items"] if j["name"] == name] == [str(job_id)], page
    events = await job_events(on.settings, job_id)
    assert [type(e) for e in events] == [JobCreated], events
    return job_id, took, events[0].occurred_at < retried_at


async def test_a_command_whose_publish_times_out_while_it_lands_is_retried_safely(on: OnCluster) -> None:
    settings, receiver = on.settings, on.receiver
    async with on.firing() as (api, jobs):
        began, began_at = time.time(), datetime.now(UTC)

        # A create whose write lands after its 503: up to three tries, as the fault may also time out a read first.
        attempts: list[tuple[uuid.UUID, float, bool]] = []
        while not any(landed for _, _, landed in attempts) and len(attempts) < 3:
            attempts.append(await timed_out_create(on, api, len(attempts)))
        assert any(landed for _, _, landed in attempts), f"no create written during the fault landed: {attempts}"

        # A pause: the same fault, then the client's retry: the job paused once, whichever of the two wrote it.
        job_id = attempts[-1][0]
        async with followers_frozen(on):
            pause_503_s = await timed_out(api, "PATCH", f"/api/jobs/{job_id}/disable")
        retried_at = datetime.now(UTC)

        async def repaused() -> dict[str, Any] | None:
            status, job = await api.call("PATCH", f"/api/jobs/{job_id}/disable")
            return job if status == 200 else None

        assert (await eventually(repaused, timeout=30, what="the retried pause answered"))["enabled"] is False
        events = await job_events(settings, job_id)
        assert [type(e) for e in events] == [JobCreated, JobPaused], events

        ended_at = datetime.now(UTC)
        await wait_on_time(receiver, time.time())
        figures = await settle_and_check(api, jobs, receiver, (began_at, ended_at)) | recovery(receiver, began)
    figures |= {
        "create_503_after_s": [round(took, 1) for _, took, _ in attempts],
        "create_landed_during_the_fault": [landed for _, _, landed in attempts],
        "pause_503_after_s": round(pause_503_s, 1),
        "pause_landed_during_the_fault": events[1].occurred_at < retried_at,
    }
    report("a create and a pause whose publish timed out while the write landed, then retried", figures)
