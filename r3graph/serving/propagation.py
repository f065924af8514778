"""W3C trace context on requests to a vLLM server, so its spans join r3graph's traces.

A vLLM server started with ``--otlp-traces-endpoint`` opens a span per request and parents it on
the request's ``traceparent`` header. r3graph's ``chat <model>`` span is the current span while the
OpenAI client sends the request, so an httpx *request event hook* that calls
``opentelemetry.propagate.inject`` puts that span's context on the wire; the server's
``llm_request`` span then appears under ``chat <model>`` in the same trace.

Use the hooks on any httpx client (``event_hooks=EVENT_HOOKS`` / ``ASYNC_EVENT_HOOKS``), or take
ready clients from :func:`traced_http_clients` and pass them to ``ChatOpenAI(http_client=...,
http_async_client=...)``. Only opentelemetry-api is needed: without an SDK (no tracer provider) or
outside any span nothing is injected and requests are unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any
from urllib.parse import urlparse

import httpx
from opentelemetry.propagate import inject

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def inject_trace_context(request: httpx.Request) -> None:
    """Sync request hook: add ``traceparent`` (and ``tracestate``/``baggage`` when set) for the
    current span. Headers the caller set explicitly are kept: they know better."""
    carrier: dict[str, str] = {}
    inject(carrier)  # the global propagator: W3C tracecontext + baggage unless OTEL_PROPAGATORS says otherwise
    for key, value in carrier.items():
        if key not in request.headers:
            request.headers[key] = value


async def ainject_trace_context(request: httpx.Request) -> None:
    """Async request hook (httpx.AsyncClient awaits its hooks). Runs in the sending task, whose
    context holds the current span, so the same injection is right here too."""
    inject_trace_context(request)


EVENT_HOOKS: dict[str, list[Any]] = {"request": [inject_trace_context]}
ASYNC_EVENT_HOOKS: dict[str, list[Any]] = {"request": [ainject_trace_context]}


def traced_http_clients(base_url: str, **kwargs: Any) -> tuple[httpx.Client, httpx.AsyncClient]:
    """A sync and an async httpx client that inject the trace context on every request.

    Loopback servers are reached without proxies (``trust_env=False``), as the project's
    ``chat_model_for_server`` does; ``kwargs`` go to both clients (e.g. ``timeout``). The caller
    owns them: close them with :func:`close_when_collected` on the object that uses them, or
    ``client.close()`` / ``await async_client.aclose()``.
    """
    loopback = (urlparse(base_url).hostname or "") in _LOOPBACK
    kwargs.setdefault("trust_env", not loopback)
    return (
        httpx.Client(event_hooks=EVENT_HOOKS, **kwargs),
        httpx.AsyncClient(event_hooks=ASYNC_EVENT_HOOKS, **kwargs),
    )


_closing: set[asyncio.Task[None]] = set()


def _close_clients(sync_client: httpx.Client, async_client: httpx.AsyncClient) -> None:
    sync_client.close()
    if async_client.is_closed:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        task = loop.create_task(async_client.aclose())
        _closing.add(task)  # a task nobody references may be collected before it runs
        task.add_done_callback(_closing.discard)
        return
    with contextlib.suppress(Exception):  # its connections' loop may be gone: they close with it
        asyncio.run(async_client.aclose())


def close_when_collected(owner: object, sync_client: httpx.Client, async_client: httpx.AsyncClient) -> None:
    """Close both clients when ``owner`` (the chat model using them) is garbage-collected, or at exit."""
    weakref.finalize(owner, _close_clients, sync_client, async_client)
