"""Turn r3graph's spans into exported traces (for the CLI, the examples and services).

The library only uses ``opentelemetry-api``: its spans go nowhere until an application installs an
SDK tracer provider. :func:`configure_tracing` is that one call, with the standard OTLP environment
(so nothing here invents its own settings):

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: where to send (the
  exporters' defaults are ``http://localhost:4318`` for http/protobuf, ``localhost:4317`` for grpc);
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``: ``http/protobuf``
  (the default, as the OTLP spec recommends) or ``grpc``;
- ``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT``, ``..._COMPRESSION``: read by the exporters;
- ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``: win over ``service_name``.

Needs the ``otlp`` extra (``opentelemetry-sdk``, ``opentelemetry-exporter-otlp``). See
``docs/tracing.md`` for the span tree and a local Jaeger.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TracingKind = Literal["otlp", "console", "none"]
OTLP_PROTOCOLS = ("http/protobuf", "grpc")


def otlp_protocol(env: Mapping[str, str] | None = None) -> str:
    """The OTLP protocol for traces from the environment (the signal-specific variable wins)."""
    env = os.environ if env is None else env
    value = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    value = value.strip().lower()
    if value not in OTLP_PROTOCOLS:
        # http/json is in the spec but has no Python exporter; say so instead of silently using another.
        raise ValueError(f"OTLP protocol {value!r} is not supported here; use one of {', '.join(OTLP_PROTOCOLS)}")
    return value


def otlp_span_exporter(env: Mapping[str, str] | None = None) -> SpanExporter:
    """An OTLP span exporter for the protocol in the environment. The exporter itself reads the
    endpoint, headers, timeout and compression variables (creating it sends nothing)."""
    if otlp_protocol(env) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


class TracingShutdown:
    """Returned by :func:`configure_tracing`: call it once at exit to flush and stop exporting.
    Keeps the exporter, processor and provider for inspection (tests, diagnostics)."""

    def __init__(self, provider: TracerProvider | None, processor: SpanProcessor | None,
                 exporter: SpanExporter | None, *, owns_provider: bool) -> None:
        self.provider, self.processor, self.exporter = provider, processor, exporter
        self._owns_provider = owns_provider
        self._done = False

    def __call__(self) -> None:
        if self._done or self.processor is None:
            return
        self._done = True
        self.processor.force_flush()
        if self._owns_provider and self.provider is not None:
            self.provider.shutdown()  # shuts its processors (ours included) down too
        else:
            self.processor.shutdown()


def _detachable_class() -> type:
    from opentelemetry.sdk.trace import SpanProcessor

    class Detachable(SpanProcessor):
        """Forwards to ``inner`` until shut down, then ignores spans."""

        def __init__(self, inner: SpanProcessor) -> None:
            self.inner, self.closed = inner, False

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if not self.closed:
                self.inner.on_start(span, parent_context=parent_context)

        def on_end(self, span: Any) -> None:
            if not self.closed:
                self.inner.on_end(span)

        def shutdown(self) -> None:
            if not self.closed:
                self.closed = True
                self.inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True if self.closed else self.inner.force_flush(timeout_millis)

    return Detachable


def _detachable(inner: SpanProcessor) -> SpanProcessor:
    # Built lazily: the SDK is an optional dependency and this module must import without it.
    return cast("SpanProcessor", _detachable_class()(inner))


def configure_tracing(kind: TracingKind, service_name: str = "r3graph") -> TracingShutdown:
    """Export r3graph's spans: ``otlp`` (standard env, batched), ``console`` (stderr) or ``none``.

    Installs an SDK ``TracerProvider`` as the global one. When an SDK provider is already installed
    (by the application or a test), the exporter is added to it instead, since OpenTelemetry allows
    one global provider per process. Returns the function that flushes and shuts the export down.
    """
    if kind == "none":
        return TracingShutdown(None, None, None, owns_provider=False)
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    processor: SpanProcessor
    exporter: SpanExporter
    if kind == "otlp":
        exporter = otlp_span_exporter()
        processor = BatchSpanProcessor(exporter)  # never block a model call on the collector
    elif kind == "console":
        exporter = ConsoleSpanExporter(out=sys.stderr)  # stdout stays the program's own output
        processor = SimpleSpanProcessor(exporter)  # print each span when it ends, in order
    else:
        raise ValueError(f"unknown tracing kind {kind!r}; use otlp, console or none")

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        # Processors cannot be removed from a provider: wrap ours so that after shutdown it goes quiet
        # instead of warning on every later span.
        detachable = _detachable(processor)
        current.add_span_processor(detachable)
        return TracingShutdown(current, detachable, exporter, owns_provider=False)
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return TracingShutdown(provider, processor, exporter, owns_provider=True)
