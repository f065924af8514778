"""OpenTelemetry spans for runs, stages and model calls (API only; the SDK is the caller's).

Span tree per run::

    invoke_workflow r3            (one per graph invocation)
      r3.reason / r3.reflect / r3.refine   (one per stage execution)
        chat <model>              (one per model call, GenAI semantic conventions)

LangGraph runs each node as its own task, so the run span cannot be a ``with`` block around the
graph: the prepare node opens it and keeps it in a process-local registry keyed by the run id in the
state; stage spans look their parent up there, and finalize (or the error path) ends it. A run resumed
from a checkpoint in another process opens a fresh run span marked ``r3.resumed``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import Span, Status, StatusCode

TRACER_NAME = "r3graph"
WORKFLOW_NAME = "r3"


# A module-level tracer is a proxy until a provider is installed, then follows the global provider,
# so an SDK set up after import (tests, CLI) is honoured without a lookup per span.
_TRACER = trace.get_tracer(TRACER_NAME)


def tracer() -> trace.Tracer:
    return _TRACER


class _RunSpans:
    def __init__(self) -> None:
        self._spans: dict[str, Span] = {}
        self._lock = threading.Lock()

    def start(self, run_id: str, attributes: dict[str, Any], *, resumed: bool = False) -> Span:
        with self._lock:
            existing = self._spans.get(run_id)
            if existing is not None:
                return existing
            span = tracer().start_span(
                f"{gen_ai.GenAiOperationNameValues.INVOKE_WORKFLOW.value} {WORKFLOW_NAME}",
                attributes={
                    gen_ai.GEN_AI_OPERATION_NAME: gen_ai.GenAiOperationNameValues.INVOKE_WORKFLOW.value,
                    gen_ai.GEN_AI_WORKFLOW_NAME: WORKFLOW_NAME,
                    "r3.resumed": resumed,
                    **attributes,
                },
            )
            self._spans[run_id] = span
            return span

    def get(self, run_id: str | None) -> Span | None:
        if not run_id:
            return None
        with self._lock:
            return self._spans.get(run_id)

    def end(self, run_id: str | None, attributes: dict[str, Any], error: BaseException | None = None) -> None:
        if not run_id:
            return
        with self._lock:
            span = self._spans.pop(run_id, None)
        if span is None:
            return
        span.set_attributes(attributes)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200]))
        span.end()

    def __len__(self) -> int:
        return len(self._spans)


run_spans = _RunSpans()


@contextmanager
def stage_span(name: str, run_id: str | None, attributes: dict[str, Any]) -> Iterator[Span]:
    """A stage's span, parented on the run span when this process holds it."""
    parent = run_spans.get(run_id)
    ctx = trace.set_span_in_context(parent) if parent is not None else otel_context.get_current()
    with tracer().start_as_current_span(f"r3.{name}", context=ctx, attributes=attributes) as span:
        yield span
