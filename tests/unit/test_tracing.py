"""The tracing helpers (shared/observability/tracing.py): a span's status after what its block did, the trace
context they carry in headers, and nothing at all when tracing is off."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from shared.observability import tracing

pytestmark = pytest.mark.unit


class HandedBack(Exception):
    pass


def test_an_expected_exception_is_no_error_and_any_other_is(exported: InMemorySpanExporter) -> None:
    with pytest.raises(HandedBack), tracing.span("handed back", expected=(HandedBack,)):
        raise HandedBack
    with pytest.raises(ValueError, match="bad"), tracing.span("failed"):
        raise ValueError("bad")
    with tracing.span("answered 503") as current:
        tracing.failed(current, "HTTP 503")
    status = {s.name: s.status.status_code for s in exported.get_finished_spans()}
    assert status == {"handed back": StatusCode.UNSET, "failed": StatusCode.ERROR, "answered 503": StatusCode.ERROR}


async def test_a_block_cancelled_by_its_timeout_ends_as_an_error(exported: InMemorySpanExporter) -> None:
    async def too_slow() -> None:
        async with asyncio.timeout(0.01):
            with tracing.span("too slow"):
                await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        await too_slow()
    (span,) = exported.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR and span.end_time is not None


def test_headers_carry_the_span_they_come_from(exported: InMemorySpanExporter) -> None:
    started = tracing.start("fire", tracing.PRODUCER)
    headers = tracing.headers_of(started)
    with tracing.span("child", parent=headers):
        pass
    tracing.end(started)
    child, fire = sorted(exported.get_finished_spans(), key=lambda s: s.name)
    assert headers is not None and headers["traceparent"].split("-")[2] == f"{fire.context.span_id:016x}"
    assert child.parent is not None and child.parent.span_id == fire.context.span_id
    with tracing.span("linked", links=[headers, {"traceparent": "not one"}]):
        pass
    (linked,) = [s for s in exported.get_finished_spans() if s.name == "linked"]
    assert [link.context.span_id for link in linked.links] == [fire.context.span_id]


def test_off_nothing_is_made() -> None:
    assert not tracing.enabled()
    with tracing.span("nothing") as current:
        assert current is None
    assert tracing.start("nothing") is None and tracing.headers_of(None) is None and tracing.carried() is None
