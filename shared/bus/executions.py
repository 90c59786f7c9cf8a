"""Publishing requested executions to the EXECUTIONS stream (the ticker for due occurrences, the api for runs now)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext

from shared.bus.pipelined import Outgoing
from shared.contracts.callbacks import CallbackRequested, callback_message_id
from shared.contracts.codec import encode
from shared.contracts.executions import SUBJECT_KINDS, ExecutionEvent, ExecutionRequested
from shared.contracts.subjects import Names
from shared.observability import tracing

# Publishes one requested execution; returns its stream sequence.
PublishRequested = Callable[[ExecutionRequested], Awaitable[int]]


def requested_message(names: Names, event: ExecutionRequested) -> Outgoing:
    """A requested execution as a message of a pipelined batch (the execution id is its message id)."""
    subject = names.execution_subject("requested", event.account_id, event.job_id)
    return Outgoing(subject, encode(event), str(event.execution_id))


def result_message(names: Names, kind: str, event: ExecutionEvent, msg_id: str) -> Outgoing:
    """An execution transition as a message of a pipelined batch (see publish_result)."""
    if kind not in SUBJECT_KINDS[type(event)]:
        raise ValueError(f"{type(event).__name__} is not published under {kind!r} (see SUBJECT_KINDS)")
    return Outgoing(names.execution_subject(kind, event.account_id, event.job_id), encode(event), msg_id)


async def publish_requested(
    js: JetStreamContext,
    names: Names,
    event: ExecutionRequested,
    subject: str | None = None,
    extra: dict[str, str] | None = None,
) -> int:
    """Publish with the execution id as message id, so a repeat within the duplicate window is dropped.

    Returns the stream sequence (the original one for a duplicate). `subject`: somewhere else than the requested
    executions (a task's subject in the TASKS stream).
    """
    message = dataclasses.replace(requested_message(names, event), extra=extra)
    ack = await js.publish(subject or message.subject, message.payload, headers=message.headers())
    return ack.seq


async def publish_result(
    js: JetStreamContext,
    names: Names,
    kind: str,
    event: ExecutionEvent,
    msg_id: str,
) -> int:
    """Publish an execution transition under `kind`; `msg_id` makes a repeat after a crash a duplicate. Returns the
    stream sequence (the original one for a duplicate)."""
    message = result_message(names, kind, event, msg_id)
    ack = await js.publish(message.subject, message.payload, headers={"Nats-Msg-Id": message.msg_id})
    return ack.seq


async def hand_over_task(js: JetStreamContext, names: Names, request: ExecutionRequested) -> None:
    """Queue a task execution for workers; it waits in the TASKS stream until one acknowledges it."""
    if request.task is None:
        raise ValueError(f"execution {request.execution_id} names no task to hand over")
    # The worker's span continues the dispatcher's trace.
    await publish_requested(js, names, request, names.task_subject(request.task.name), tracing.carried())


async def publish_timed(js: JetStreamContext, names: Names, request: ExecutionRequested | CallbackRequested) -> None:
    """Publish what a durable timer held: the next attempt of an execution, or the next try of a callback."""
    if isinstance(request, ExecutionRequested):
        await publish_requested(js, names, request)
        return
    msg_id = callback_message_id(request.execution_id, request.kind, request.callback_attempt, "requested")
    await publish_result(js, names, "callback", request, msg_id)
