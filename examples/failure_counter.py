"""A service that subscribes to the scheduler's execution results, written with FastStream: it counts each job's
failed attempts and logs every dead letter.

It reads the EXECUTIONS stream through durable JetStream consumers of its own (one per kind of result it follows),
so a restart goes on where it stopped and nothing is missed while it is down; events are decoded with the same codec
the scheduler's services use (`scheduler.contracts`). Run it beside `uv run scheduler dev`:

    uv run python -m examples.failure_counter

It finds the running `scheduler dev` in `.scheduler` (or, for `scheduler dev --data-dir D`, in SCHEDULER_DATA_DIR=D);
against another installation set NATS_URL and SCHEDULER_NAMESPACE. Its consumers start from the moment they are
first made, and its counts are of what it has seen since it started (kept in memory: a real service would store
them). Delete its consumers (`failure_counter_failed`, `..._timed_out`, `..._dead_lettered`) when done with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from faststream import AckPolicy, FastStream
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.js.api import DeliverPolicy

from scheduler.contracts import (
    ExecutionDeadLettered,
    ExecutionEvent,
    ExecutionFailed,
    Names,
    decode_execution_event,
)

log = logging.getLogger("failure_counter")

# The results it follows: failed attempts (a failure that timed out has a subject kind of its own) and dead letters.
KINDS = ("failed", "timed_out", "dead_lettered")


@dataclass
class FailureBook:
    """What the subscriber has seen: failed attempts per job, and the dead letters."""

    failures: Counter[UUID] = field(default_factory=Counter)
    dead_letters: list[ExecutionDeadLettered] = field(default_factory=list)

    def record(self, event: ExecutionEvent) -> None:
        if isinstance(event, ExecutionFailed):
            self.failures[event.job_id] += 1
            log.info(
                "job %s: %d failed attempt(s) so far; attempt %d of %s: %s",
                event.job_id, self.failures[event.job_id], event.attempt, event.occurrence_id, event.error,
            )  # fmt: skip
        elif isinstance(event, ExecutionDeadLettered):
            self.dead_letters.append(event)
            log.warning(
                "dead letter: job %s, occurrence %s, after attempt %d: %s",
                event.job_id, event.occurrence_id, event.attempt, event.reason,
            )  # fmt: skip


def build(nats_url: str, namespace: str, book: FailureBook, durable: str = "failure_counter") -> FastStream:
    """The FastStream application: a durable pull consumer per kind of result, named `<durable>_<kind>`."""
    names = Names(namespace)
    broker = NatsBroker(nats_url)
    # The scheduler owns the stream: the application binds to it and never changes it.
    stream = JStream(names.executions_stream, declare=False)

    async def on_result(message: NatsMessage) -> None:
        try:
            event = decode_execution_event(message.body)
        except msgspec.ValidationError as exc:  # not one of the scheduler's events: said, and acknowledged
            log.error("skipping a message on %s that is no execution event: %s", message.raw_message.subject, exc)
            return
        book.record(event)

    for kind in KINDS:
        subscriber = broker.subscriber(
            names.execution_subject(kind, "*", "*"),  # any account, any job
            stream=stream,
            durable=f"{durable}_{kind}",
            # A new consumer starts from now, not from the stream's whole retained history; once made, it goes
            # on from where it stopped. Handled messages are acknowledged, and so are ones the handler skips.
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.ACK,
            pull_sub=PullSub(batch_size=100, timeout=1.0),
        )
        subscriber(on_result)
    return FastStream(broker)


def _where() -> tuple[str, str]:
    """NATS_URL and SCHEDULER_NAMESPACE, or the running `scheduler dev`'s."""
    nats_url = os.environ.get("NATS_URL")
    if nats_url:
        return nats_url, os.environ.get("SCHEDULER_NAMESPACE", "scheduler")
    from scheduler.endpoints import DevNotRunningError, find  # only for finding a local `scheduler dev`

    data_dir = Path(os.environ.get("SCHEDULER_DATA_DIR", ".scheduler"))
    try:
        dev = find(data_dir)
    except DevNotRunningError:
        raise SystemExit(
            f"no scheduler dev runs on {data_dir}: start `uv run scheduler dev` (with --data-dir, set"
            " SCHEDULER_DATA_DIR to it), or set NATS_URL and SCHEDULER_NAMESPACE"
        ) from None
    return dev.nats_url, dev.namespace


def main(*_args: Any) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    nats_url, namespace = _where()
    log.info("following %s's execution results on %s", namespace, nats_url)
    asyncio.run(build(nats_url, namespace, FailureBook()).run())


if __name__ == "__main__":
    main()
