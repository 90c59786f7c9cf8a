"""Distributed traces (OpenTelemetry), linked across the services by W3C trace context in NATS message headers.

Off unless the standard variables ask for it: OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
set, and neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none. Off, nothing is exported and each call here
costs one flag test: no span object, no header. On, spans go through a batching OTLP/HTTP exporter that reads the
rest of the OTEL_* variables itself (headers, timeout, compression); OTEL_SERVICE_NAME names the process
(default `scheduler-<its services>`).

A trace follows one occurrence: the ticker's publish of it (the root), the dispatcher's delivery (its parent carried
in the request's headers), the HTTP request (a client span whose `traceparent` the receiver gets), the worker's task;
and one api command: the request, the event's append, and the projector's write of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: Tracer | None = None
_provider: TracerProvider | None = None

CLIENT, CONSUMER, INTERNAL, PRODUCER, SERVER = (
    SpanKind.CLIENT,
    SpanKind.CONSUMER,
    SpanKind.INTERNAL,
    SpanKind.PRODUCER,
    SpanKind.SERVER,
)


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(services: Sequence[str]) -> None:
    """Export this process's spans over OTLP if the variables ask for it (see `wanted`); otherwise nothing."""
    if _tracer is not None or not wanted():
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or "scheduler-" + "-".join(services)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    enable(provider)


def enable(provider: TracerProvider) -> None:
    """Trace through `provider` (configure's, or a test's with an in-memory exporter)."""
    global _tracer, _provider
    _provider, _tracer = provider, provider.get_tracer("scheduler")


def disable() -> None:
    """Stop tracing (the provider's spans are flushed)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.force_flush()
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


@contextmanager
def span(
    name: str,
    kind: SpanKind = INTERNAL,
    *,
    parent: Mapping[str, str] | None = None,
    links: Sequence[Mapping[str, str]] = (),
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """A span around the block, current inside it (so spans and headers made there are its children). `parent`:
    the headers of the message that caused it (its trace context); `links`: headers of other messages it handles.
    Tracing off: nothing at all."""
    if _tracer is None:
        yield
        return
    context = _PROPAGATOR.extract(parent) if parent else None
    linked = [
        Link(c) for h in links if (c := trace.get_current_span(_PROPAGATOR.extract(h)).get_span_context()).is_valid
    ]
    with _tracer.start_as_current_span(name, context=context, kind=kind, links=linked, attributes=attributes):
        yield


_Headers = TypeVar("_Headers", bound=MutableMapping[str, str])


def inject(headers: _Headers) -> _Headers:
    """`headers` with the current span's trace context added (`traceparent`), when tracing."""
    if _tracer is not None:
        _PROPAGATOR.inject(headers)
    return headers


def carried() -> dict[str, str] | None:
    """The current span's trace context as message headers, or None (tracing off, or no span)."""
    if _tracer is None:
        return None
    headers: dict[str, str] = {}
    _PROPAGATOR.inject(headers)
    return headers or None
