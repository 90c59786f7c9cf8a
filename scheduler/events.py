"""`scheduler events tail`: follow the event streams from a terminal, filtered by account, job and event type."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared.bus.connection import connect, disconnect
from shared.contracts.codec import decode_execution_event, decode_job_event
from shared.contracts.subjects import Names
from shared.settings import Settings

STREAMS = ("jobs", "executions")


def subjects(names: Names, stream: str, account: UUID | None, job: UUID | None) -> str:
    """The subject filter of a stream for an account and/or a job (`*` for either left open)."""
    a, j = str(account) if account else "*", str(job) if job else "*"
    if stream == "jobs":
        return f"{names.namespace}.jobs.*.{a}.{j}"
    return f"{names.namespace}.executions.*.{a}.{j}"


def line(event: msgspec.Struct) -> str:
    """One readable line: time, type, ids, and what matters about this kind of event."""
    fields = msgspec.structs.asdict(event)
    detail = []
    for name in ("occurrence_id", "attempt", "response_code", "error", "reason", "retry_at", "changed", "policy"):
        value = fields.get(name)
        # Left out: a field this kind of event lacks (job events have no attempt), empty ones, and a first attempt.
        if value not in (None, (), "") and not (name == "attempt" and value == 1):
            detail.append(f"{name}={value}")
    kind = type(event).__name__
    when = fields["occurred_at"].isoformat().replace("+00:00", "Z")
    return f"{when} {kind:<26} account={fields['account_id']} job={fields['job_id']} " + " ".join(detail)


async def tail(
    settings: Settings,
    *,
    streams: tuple[str, ...],
    account: UUID | None,
    job: UUID | None,
    types: frozenset[str],
    since: datetime | None,
    count: int | None,
    as_json: bool,
    out: Callable[[str], None],
) -> int:
    """Print matching events as they arrive (from `since`, or from now on); stop after `count`. Returns the count."""
    names = Names(settings.namespace)
    nc = await connect(settings.nats_url, "events tail")
    printed = 0
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    subs = []
    try:
        js = nc.jetstream()
        for stream in streams:
            config = (
                ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)
                if since is not None
                else ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
            )

            async def handler(msg: Msg, stream: str = stream) -> None:
                await queue.put((stream, msg.data))

            subs.append(
                await js.subscribe(
                    subjects(names, stream, account, job),
                    stream=names.jobs_stream if stream == "jobs" else names.executions_stream,
                    ordered_consumer=True,
                    config=config,
                    cb=handler,
                )
            )
        while count is None or printed < count:
            stream, data = await queue.get()
            try:
                event = decode_job_event(data) if stream == "jobs" else decode_execution_event(data)
            except msgspec.ValidationError:
                continue
            if types and type(event).__name__ not in types:
                continue
            out(data.decode() if as_json else line(event))
            printed += 1
    finally:
        for sub in subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        await disconnect(nc)
    return printed
