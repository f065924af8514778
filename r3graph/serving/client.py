"""LangChain client for an R3 vLLM server (or any vLLM OpenAI-compatible server)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import httpx
from langchain_openai import ChatOpenAI

from r3graph.serving.propagation import close_when_collected, traced_http_clients

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def normalize_base_url(base_url: str) -> str:
    """Accept ``http://host:port`` or ``.../v1``; return the ``/v1`` form the OpenAI client wants."""
    url = base_url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def _is_loopback(base_url: str) -> bool:
    return (urlparse(base_url).hostname or "") in _LOOPBACK


def served_models(base_url: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The server's ``/models`` entries (vLLM's carry ``root``: the path or hub id it loaded)."""
    url = normalize_base_url(base_url)
    with httpx.Client(trust_env=not _is_loopback(url), timeout=timeout) as http:
        resp = http.get(f"{url}/models")
        resp.raise_for_status()
        return list(resp.json().get("data") or [])


def discover_model(base_url: str, timeout: float = 10.0) -> str:
    """The first model the server serves (R3 servers serve exactly one)."""
    data = served_models(base_url, timeout)
    if not data:
        raise RuntimeError(f"{normalize_base_url(base_url)}/models lists no models")
    return str(data[0]["id"])


def chat_model_for_server(base_url: str, model: str | None = None, **kwargs: Any) -> ChatOpenAI:
    """``ChatOpenAI`` configured for vLLM.

    - ``stream_usage=True``: vLLM sends usage in the last stream chunk only when asked.
    - Chat Completions, not the Responses API (R3 servers are started for chat).
    - Cached prompt tokens: the server runs with ``--enable-prompt-tokens-details`` and
      langchain-openai maps ``usage.prompt_tokens_details.cached_tokens`` to
      ``usage_metadata["input_token_details"]["cache_read"]``.
    - Structured output: ``.with_structured_output(Schema, method="json_schema")`` sends an
      OpenAI ``json_schema`` response_format, which vLLM turns into constrained decoding.
    - Loopback servers are reached without proxies (``trust_env=False``), and requests carry the
      trace context (``traceparent``).
    - ``max_retries=0``: the R3 graph's RetryPolicy retries transient failures; client retries on
      top of it would multiply the attempts (3 graph attempts x 2 client attempts = 6 requests).
    """
    url = normalize_base_url(base_url)
    params: dict[str, Any] = {
        "base_url": url,
        "model": model or discover_model(url),
        "api_key": "EMPTY",  # vLLM ignores it unless started with --api-key; the client needs one
        "stream_usage": True,
        "use_responses_api": False,
        "temperature": 0.0,
        "max_tokens": 512,
        "max_retries": 0,  # the graph's RetryPolicy retries (see above)
        "timeout": 120.0,
    }
    ours = "http_client" not in kwargs and "http_async_client" not in kwargs
    if ours:
        # Every request carries the current trace context (traceparent), so a vLLM server started
        # with --otlp-traces-endpoint puts its spans under r3graph's chat spans.
        params["http_client"], params["http_async_client"] = traced_http_clients(url)
    params.update(kwargs)
    chat = ChatOpenAI(**params)
    if ours:  # ChatOpenAI never closes clients it was given: they close with the model
        close_when_collected(chat, params["http_client"], params["http_async_client"])
    return chat
