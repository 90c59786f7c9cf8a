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

import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)
_PROPAGATOR = TraceContextTextMapPropagator()
# The SDK keeps at most 128 links on a span: the rest are not even read.
MAX_LINKS = 128
# What `span` is while tracing is off: entered and left for nothing.
NO_SPAN: AbstractContextManager[None] = nullcontext()
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
    if _tracer is not None:
        return
    configured = trace.get_tracer_provider()
    if isinstance(configured, TracerProvider):  # the process's own (a worker's app set one up): its spans go there
        enable(configured)
        return
    if not wanted():
        return
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").startswith("grpc"):
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported: traces go over OTLP/HTTP (port 4318)")
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


def span(
    name: str,
    kind: SpanKind = INTERNAL,
    *,
    parent: Mapping[str, str] | None = None,
    links: Sequence[Mapping[str, str]] = (),
    attributes: Mapping[str, Any] | None = None,
    expected: tuple[type[BaseException], ...] = (),
) -> AbstractContextManager[Span | None]:
    """A span around the block, current inside it (so spans and headers made there are its children), given to the
    block to add to. `parent`: the headers of the message that caused it (its trace context); `links`: headers of
    other messages it handles (at most MAX_LINKS). An exception ends it as an error, unless it is `expected` (control
    flow, such as a delivery handed back to wait); a cancellation (a timeout) too. Tracing off: one shared no-op that
    gives the block None (callers whose attributes cost something to build check `enabled()` first)."""
    if _tracer is None:
        return NO_SPAN
    return _span(_tracer, name, kind, parent, links, attributes, expected)


@contextmanager
def _span(
    tracer: Tracer,
    name: str,
    kind: SpanKind,
    parent: Mapping[str, str] | None,
    links: Sequence[Mapping[str, str]],
    attributes: Mapping[str, Any] | None,
    expected: tuple[type[BaseException], ...],
) -> Iterator[Span]:
    context = _PROPAGATOR.extract(parent) if parent else None
    contexts = (trace.get_current_span(_PROPAGATOR.extract(h)).get_span_context() for h in links[:MAX_LINKS])
    linked = [Link(c) for c in contexts if c.is_valid]
    with tracer.start_as_current_span(
        name, context=context, kind=kind, links=linked, attributes=attributes,
        record_exception=False, set_status_on_exception=False,
    ) as current:  # fmt: skip
        try:
            yield current
        except expected:
            raise
        except BaseException as exc:
            current.record_exception(exc)
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def start(name: str, kind: SpanKind = INTERNAL, *, attributes: Mapping[str, Any] | None = None) -> Span | None:
    """A span that is not made current and is ended by the caller (`end`): for work that outlives a block, such as
    occurrences published in one batch. None when tracing is off."""
    return None if _tracer is None else _tracer.start_span(name, kind=kind, attributes=attributes)


def end(started: Span | None, error: BaseException | None = None) -> None:
    if started is None:
        return
    if error is not None:
        started.record_exception(error)
        started.set_status(Status(StatusCode.ERROR, type(error).__name__))
    started.end()


def _as_headers(context: Context | None = None) -> dict[str, str]:
    """The trace context of `context` (the current one by default) as message headers."""
    headers: dict[str, str] = {}
    _PROPAGATOR.inject(headers, context=context)
    return headers


def headers_of(started: Span | None) -> dict[str, str] | None:
    """The trace context of `started` as message headers (None for None)."""
    return None if started is None else _as_headers(trace.set_span_in_context(started))


def failed(current: Span | None, description: str) -> None:
    """Mark `current` as an error that raised nothing (an HTTP answer of 5xx)."""
    if current is not None:
        current.set_status(Status(StatusCode.ERROR, description))


_Headers = TypeVar("_Headers", bound=MutableMapping[str, str])


def inject(headers: _Headers) -> _Headers:
    """`headers` with the current span's trace context added (`traceparent`), when tracing."""
    if _tracer is not None:
        _PROPAGATOR.inject(headers)
    return headers


def carried() -> dict[str, str] | None:
    """The current span's trace context as message headers, or None (tracing off, or no span)."""
    return None if _tracer is None else (_as_headers() or None)
