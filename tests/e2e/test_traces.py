"""Traces across the pipeline, with an in-memory span exporter and the four services in this process on real NATS
and Postgres: one occurrence is one connected trace from the ticker's publish to the receiver (which gets its
`traceparent`), and an api command's trace reaches the projector's write of its event. Off, nothing is traced."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from scheduler.worker import Worker
from shared.bus.executions import hand_over_task
from shared.contracts.jobs import TaskSpec
from shared.contracts.subjects import Names
from shared.observability import tracing
from shared.settings import Settings
from tests.e2e.harness import api_client, in_process
from tests.e2e.test_delivery_retries import once_soon
from tests.integration.test_priority import bus, request, running
from tests.receiver import Receiver
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def named(spans: tuple[ReadableSpan, ...], prefix: str, **attributes: Any) -> list[ReadableSpan]:
    return [
        s for s in spans
        if s.name.startswith(prefix) and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
    ]  # fmt: skip


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_one_occurrence_is_one_trace_from_the_ticker_to_the_receiver(
    settings: Settings,
    receiver: Receiver,
    account_id: uuid.UUID,
    auth_headers: dict[str, str],
    exported: InMemorySpanExporter,
) -> None:
    async with in_process(settings), api_client(settings.api_port, auth_headers) as api:
        body = {"account_id": str(account_id), "name": "traced", "type": 1, "schedule": once_soon(5),
                "webhooks": [{"url": receiver.url_for("/traced")}]}  # fmt: skip
        status, job = await api.call("POST", "/api/jobs", json=body)
        assert status == 201, job
        (call,) = await eventually(lambda: receiver.on("/traced"), timeout=20, what="the delivery")

        def delivered() -> tuple[ReadableSpan, ...] | None:
            spans = exported.get_finished_spans()
            return spans if named(spans, "dispatch", **{"job.id": job["id"]}) else None

        spans = await eventually(delivered, timeout=10, what="the dispatcher's span")
    # The receiver's traceparent: version, trace id, parent span id, flags.
    version, trace_hex, parent_hex, _flags = call.headers["traceparent"].split("-")
    assert version == "00"
    (fire,) = named(spans, "fire occurrence", **{"job.id": job["id"]})
    (dispatch,) = named(spans, "dispatch", **{"job.id": job["id"]})
    (client,) = [s for s in spans if s.kind == SpanKind.CLIENT and s.context.trace_id == fire.context.trace_id]
    assert fire.kind == SpanKind.PRODUCER and fire.parent is None, "the occurrence starts its trace"
    assert {s.context.trace_id for s in (fire, dispatch, client)} == {int(trace_hex, 16)}
    assert parent_of(dispatch) == fire.context.span_id, "the delivery continues the ticker's publish"
    assert parent_of(client) == dispatch.context.span_id
    assert int(parent_hex, 16) == client.context.span_id, "the receiver's parent is the HTTP request's span"
    attributes = client.attributes or {}
    assert attributes["server.address"] == "127.0.0.1" and attributes["http.response.status_code"] == 200
    assert not any("/traced" in str(v) for v in attributes.values()), "a webhook's path may hold its secret"
    assert fire.end_time is not None and dispatch.start_time is not None


async def test_an_api_command_is_traced_to_the_projectors_write(
    settings: Settings, account_id: uuid.UUID, auth_headers: dict[str, str], exported: InMemorySpanExporter
) -> None:
    # The caller's own trace, continued by the api.
    caller_trace = uuid.uuid4().hex
    traceparent = f"00-{caller_trace}-{uuid.uuid4().hex[:16]}-01"
    async with in_process(settings), api_client(settings.api_port, auth_headers | {"traceparent": traceparent}) as api:
        body = {"account_id": str(account_id), "name": "command", "type": 1, "schedule": "0 9 * * *"}
        status, job = await api.call("POST", "/api/jobs", json=body)
        assert status == 201, job
        jobs_stream = Names(settings.namespace).jobs_stream

        def projected() -> tuple[ReadableSpan, ...] | None:
            spans = exported.get_finished_spans()
            mine = [s for s in named(spans, f"project {jobs_stream}") if s.context.trace_id == int(caller_trace, 16)]
            return spans if mine else None

        spans = await eventually(projected, timeout=10, what="the projector's span in the command's trace")
    (request,) = [s for s in spans if s.kind == SpanKind.SERVER and s.name.startswith("POST /api/jobs")]
    assert (request.attributes or {})["http.response.status_code"] == 201
    (append,) = named(spans, "append JobCreated", **{"job.id": job["id"]})
    (write,) = [s for s in named(spans, f"project {jobs_stream}") if s.context.trace_id == int(caller_trace, 16)]
    assert {s.context.trace_id for s in (request, append, write)} == {int(caller_trace, 16)}
    assert parent_of(append) == request.context.span_id
    assert parent_of(write) == append.context.span_id, "the projector's write continues the append"


async def test_a_task_continues_the_trace_of_the_delivery_that_queued_it(
    settings: Settings, exported: InMemorySpanExporter
) -> None:
    names = Names(settings.namespace)
    worker = Worker("traced", concurrency=1)
    ran: list[int] = []

    @worker.task("tests.traced")
    async def record(n: int) -> None:
        ran.append(n)

    queued = request(5, task=TaskSpec(name="tests.traced", args=(7,)))
    async with bus(settings) as js, running(lambda stop: worker.run(settings, stop)):
        with tracing.span("dispatch (the test's)", tracing.CONSUMER):  # as the dispatcher hands a task over
            await hand_over_task(js, names, queued)
        await eventually(lambda: ran, timeout=20, what="the task run")

        def task_span() -> tuple[ReadableSpan, ...] | None:
            spans = exported.get_finished_spans()
            return spans if named(spans, "task tests.traced") else None

        spans = await eventually(task_span, timeout=10, what="the worker's span")
    (dispatch,) = named(spans, "dispatch (the test's)")
    (task,) = named(spans, "task tests.traced", **{"execution.id": str(queued.execution_id)})
    assert task.kind == SpanKind.CONSUMER and ran == [7]
    assert task.context.trace_id == dispatch.context.trace_id and parent_of(task) == dispatch.context.span_id


def test_tracing_is_off_unless_the_otel_variables_ask_for_it() -> None:
    assert not tracing.enabled()
    assert tracing.carried() is None and tracing.inject({"a": "b"}) == {"a": "b"}
    assert not tracing.wanted({})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"})
