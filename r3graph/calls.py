"""One place where r3graph talks to the chat model.

Every model call of every stage and strategy goes through :class:`StageCaller`: it lays the messages
out (shared prefix first), applies the stage's sampling settings, enforces the per-call timeout,
opens a GenAI span, reads token usage (cached prompt tokens included) and turns failures into
:class:`R3ModelError` with a ``transient`` flag the graph's RetryPolicy uses.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from pydantic import BaseModel

from r3graph.context import R3Context
from r3graph.errors import R3ConfigError, R3Error, R3ModelError, R3TimeoutError
from r3graph.messages import stage_messages
from r3graph.prompts import PromptPack
from r3graph.reply_text import split_reasoning
from r3graph.state import Usage
from r3graph.tracing import tracer

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}

# The header vllm-router's consistent_hash policy reads first: every call of a run carries the run's
# id, so the router keeps a run's stages (which share the image prefix) on one replica's prefix cache.
SESSION_HEADER = "X-Session-ID"


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt can help: timeouts, dropped connections, 429 and 5xx answers."""
    if isinstance(exc, R3ModelError):
        return exc.transient
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return status in TRANSIENT_STATUS
    name = type(exc).__name__
    return any(word in name for word in ("Timeout", "Connection", "RemoteProtocol", "ReadError"))


def _is_openai_client(model: Any) -> bool:
    return type(model).__module__.startswith("langchain_openai")


def _backend_key(model: Any) -> tuple[str, str, str]:
    base = getattr(model, "openai_api_base", None) or getattr(model, "base_url", None) or ""
    return (type(model).__name__, str(base), model_name(model))


# Backends that answered a response_format request with a client error (an OpenAI-compatible server
# without structured outputs): asked in free text from then on, for the rest of the process.
_REFUSED_RESPONSE_FORMAT: set[tuple[str, str, str]] = set()


def supports_response_format(model: Any) -> bool | None:
    """Whether the model takes an OpenAI-style ``response_format`` kwarg (JSON schema output).

    A model class may declare it (``supports_response_format = True``, as ChatVLLMEngine does).
    ``langchain_openai`` clients may point at any OpenAI-compatible server, so for them the answer
    is None (unknown) until a request shows it: a refused request marks the backend as without it.
    Every other chat model: False.
    """
    declared = getattr(model, "supports_response_format", None)
    if declared is not None:
        return bool(declared)
    if _is_openai_client(model):
        return False if _backend_key(model) in _REFUSED_RESPONSE_FORMAT else None
    return False


def _refused_structured_output(exc: R3ModelError) -> bool:
    """A client error (400/422) about the structured-output request itself."""
    cause = exc.__cause__
    status = getattr(cause, "status_code", None) or getattr(getattr(cause, "response", None), "status_code", None)
    text = str(cause).lower()
    return status in (400, 422) and any(w in text for w in ("response_format", "json_schema", "structured", "guided"))


def reasoning_of(message: BaseMessage) -> str:
    """Reasoning a backend returned apart from the answer (vLLM's ``reasoning_content``, reasoning
    content blocks); never part of the text a stage uses."""
    extra = message.additional_kwargs or {}
    parts = [extra.get("reasoning_content"), extra.get("reasoning")]
    if isinstance(message.content, list):
        parts += [p.get("reasoning") or p.get("thinking") for p in message.content
                  if isinstance(p, dict) and p.get("type") in ("reasoning", "thinking")]
    return "\n".join(p for p in parts if isinstance(p, str) and p.strip())


def session_kwargs(model: Any, session_key: str | None) -> dict[str, Any]:
    """Invoke kwargs that put the run's routing key on the request: ``extra_headers`` for OpenAI
    clients (ChatOpenAI hands it to the HTTP request; see :data:`SESSION_HEADER`), nothing for models
    that do not take it (in-process engine, other providers). A model class may declare
    ``supports_extra_headers = True/False`` to say otherwise."""
    declared = getattr(model, "supports_extra_headers", None)
    takes_headers = bool(declared) if declared is not None else type(model).__module__.startswith("langchain_openai")
    if not session_key or not takes_headers:
        return {}
    return {"extra_headers": {SESSION_HEADER: session_key}}


def model_name(model: Any) -> str:
    for attr in ("model_name", "model", "model_path", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return getattr(model, "_llm_type", type(model).__name__)


def finish_reason_of(message: BaseMessage | None) -> str | None:
    """Why generation stopped ("stop", "length"...), as ChatOpenAI and ChatVLLMEngine report it."""
    reason = (getattr(message, "response_metadata", None) or {}).get("finish_reason")
    return str(reason) if reason else None


def usage_of(message: BaseMessage | None) -> Usage:
    meta = getattr(message, "usage_metadata", None) or {}
    details = meta.get("input_token_details") or {}
    return Usage(
        calls=1,
        input_tokens=int(meta.get("input_tokens") or 0),
        output_tokens=int(meta.get("output_tokens") or 0),
        cached_input_tokens=int(details.get("cache_read") or 0),
        truncated_calls=int(finish_reason_of(message) == "length"),
    )


def message_text(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(
        (part.get("text", "") if part.get("type", "text") == "text" else "") if isinstance(part, dict) else str(part)
        for part in message.content
    )


def _messages_for_span(messages: list[BaseMessage]) -> str:
    """Prompt messages as GenAI JSON, with image bytes replaced by a placeholder (never traced)."""
    out = []
    for msg in messages:
        parts: list[dict[str, Any]] = []
        content = msg.content if isinstance(msg.content, list) else [msg.content]
        for part in content:
            if isinstance(part, str):
                parts.append({"type": "text", "content": part})
            elif part.get("type") == "text":
                parts.append({"type": "text", "content": part.get("text", "")})
            else:
                parts.append({"type": "image", "content": "[image omitted]"})
        out.append({"role": msg.type, "parts": parts})
    return json.dumps(out)


async def bounded_call(stage: str, awaitable: Any, context: R3Context, deadline: float | None) -> Any:
    """Await one backend call within ``call_timeout_s`` and what is left of the run's deadline; any
    failure becomes an :class:`R3ModelError` whose ``transient`` flag the RetryPolicy reads."""
    limit = context.call_timeout_s
    run_left = deadline - time.time() if deadline is not None else None
    if run_left is not None and run_left <= 0:
        awaitable.close()
        raise R3TimeoutError(f"{stage}: the run's deadline passed (run_timeout_s)", stage=stage)
    bounded_by_run = run_left is not None and run_left < limit
    try:
        async with asyncio.timeout(min(limit, run_left) if run_left is not None else limit):
            return await awaitable
    except TimeoutError as exc:
        if bounded_by_run:
            raise R3TimeoutError(
                f"{stage}: the run's deadline passed during a model call (run_timeout_s={context.run_timeout_s}s)",
                stage=stage,
            ) from exc
        raise R3ModelError(
            f"{stage}: model call timed out after {limit}s (call_timeout_s)", transient=True, stage=stage
        ) from exc
    except R3Error as exc:
        exc.stage = exc.stage or stage
        raise
    except Exception as exc:
        raise R3ModelError(
            f"{stage}: model call failed: {type(exc).__name__}: {str(exc)[:300]}",
            transient=is_transient(exc),
            stage=stage,
        ) from exc


@functools.cache
def _json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """A reply schema's JSON schema, built once per class: pydantic builds it anew on every
    ``model_json_schema()`` call (about 1 ms of event-loop CPU, per structured call otherwise).
    Shared between calls, so read-only: the request is serialised from it, never changes it."""
    return schema.model_json_schema()


def _reply_schema(stage: str) -> type[BaseModel] | None:
    from r3graph.reflect.verdicts import STAGE_SCHEMAS  # the reflect package imports this module

    return STAGE_SCHEMAS.get(stage)


@dataclass
class CallResult:
    """One reply: ``text`` is the answer only (reasoning blocks taken out), ``reasoning`` what was
    taken out (kept for traces, never for drafts, critiques or edits)."""

    text: str
    usage: Usage
    parsed: Any = None
    reasoning: str = ""
    truncated: bool = False


@dataclass
class StageCaller:
    """Calls the model for one run: fixed model, pack, context and (normalised) images."""

    model: BaseChatModel
    pack: PromptPack
    context: R3Context
    image_urls: list[str]
    run_config: RunnableConfig | None = None
    deadline: float | None = None
    # The run's id: sent as the router's session key (X-Session-ID) so a run stays on one replica.
    session_key: str | None = None
    # Summed over every call made through this caller, concurrent fan-out calls included.
    usage: Usage = field(default_factory=Usage)

    async def call(self, stage: str, text: str, *, output_type: str = "text", **extra: Any) -> CallResult:
        """One traced model call. Stages with a reply schema (yes/no answers, question and claim
        lists, judge verdicts) ask for structured output where the backend and pack allow it."""
        messages = stage_messages(self.pack, self.image_urls, text)
        sampling = self.context.sampling_for(stage, self.pack.max_tokens).as_kwargs()
        extra = {**self._template_kwargs(), **extra}
        schema = _reply_schema(stage) if "response_format" not in extra else None
        structured = schema is not None and self._use_response_format()
        if schema is not None and structured:
            extra = self._with_response_format(extra, {
                "type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": _json_schema(schema), "strict": True},
            })
            output_type = "json"
        with self._span(stage, sampling, messages, output_type) as span:
            routing = session_kwargs(self.model, self.session_key)
            try:
                reply = await self._guarded(
                    stage, self.model.ainvoke(messages, self.run_config, **sampling, **routing, **extra)
                )
            except R3ModelError as exc:
                if not structured or not _refused_structured_output(exc) or self.context.structured_judge:
                    raise
                _REFUSED_RESPONSE_FORMAT.add(_backend_key(self.model))  # detected: ask in free text from now on
                extra = self._with_response_format(extra, None)
                span.set_attribute("r3.structured_output", "refused")
                reply = await self._guarded(
                    stage, self.model.ainvoke(messages, self.run_config, **sampling, **routing, **extra)
                )
            assert isinstance(reply, AIMessage)
            split = split_reasoning(message_text(reply), reasoning_of(reply))
            finish = finish_reason_of(reply)
            result = CallResult(text=split.answer, usage=usage_of(reply), reasoning=split.reasoning,
                                truncated=finish == "length")
            self._finish_span(span, result)
            if finish is not None:
                span.set_attribute(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS, [finish])
            if split.reasoning:
                span.set_attribute("r3.reasoning_chars", len(split.reasoning))
            self.usage += result.usage
            return result

    def _with_response_format(self, extra: dict[str, Any], response_format: dict[str, Any] | None) -> dict[str, Any]:
        """``extra`` asking for ``response_format`` (or no longer, with None).

        langchain_openai turns a top-level ``response_format`` into the SDK's ``parse()``, which raises
        on a reply cut at max_tokens (LengthFinishReasonError) instead of returning it; in the request
        body (``extra_body``) it reaches the server the same way and a cut reply stays a reply, which
        the verdict layer reads as far as it goes.
        """
        extra = dict(extra)
        if not _is_openai_client(self.model):
            extra.pop("response_format", None)
            return extra if response_format is None else {**extra, "response_format": response_format}
        body = {k: v for k, v in (extra.get("extra_body") or getattr(self.model, "extra_body", None) or {}).items()
                if k != "response_format"}
        if response_format is not None:
            body["response_format"] = response_format
        return {**extra, "extra_body": body}

    def _template_kwargs(self) -> dict[str, Any]:
        """Chat-template switches (e.g. Qwen3's ``enable_thinking``) in the form the backend takes."""
        switches = self.context.chat_template_kwargs
        if switches is None:
            switches = self.pack.chat_template_kwargs
        if not switches:
            return {}
        if getattr(self.model, "supports_chat_template_kwargs", False):
            return {"chat_template_kwargs": dict(switches)}
        if _is_openai_client(self.model):  # vLLM's server reads them from the request body
            return {"extra_body": {**(getattr(self.model, "extra_body", None) or {}),
                                   "chat_template_kwargs": dict(switches)}}
        raise R3ConfigError(
            f"chat_template_kwargs={switches!r}, but {type(self.model).__name__} has no way to pass them; "
            "set supports_chat_template_kwargs = True on the model class if it takes a chat_template_kwargs kwarg"
        )

    def _use_response_format(self) -> bool:
        supported = supports_response_format(self.model)
        if self.context.structured_judge and supported is False:
            raise R3ConfigError(
                f"structured_judge=True, but {type(self.model).__name__} does not take response_format; "
                "set supports_response_format = True on the model class if it does"
            )
        if self.context.structured_judge is None:
            return supported is not False and self.pack.constrained_json
        return self.context.structured_judge

    async def _guarded(self, stage: str, awaitable: Any) -> Any:
        return await bounded_call(stage, awaitable, self.context, self.deadline)

    def _span(
        self, stage: str, sampling: dict[str, Any], messages: list[BaseMessage], output_type: str = "text"
    ) -> Any:
        name = model_name(self.model)
        attributes: dict[str, Any] = {
            gen_ai.GEN_AI_OPERATION_NAME: gen_ai.GenAiOperationNameValues.CHAT.value,
            gen_ai.GEN_AI_REQUEST_MODEL: name,
            gen_ai.GEN_AI_OUTPUT_TYPE: output_type,
            "r3.stage": stage,
            "r3.images": len(self.image_urls),
        }
        for key in ("temperature", "max_tokens", "top_p", "seed"):
            if key in sampling:
                attributes[f"gen_ai.request.{key}"] = sampling[key]
        if self.context.content_capture():
            attributes[gen_ai.GEN_AI_INPUT_MESSAGES] = _messages_for_span(messages)
        return tracer().start_as_current_span(f"chat {name}", attributes=attributes)

    def _finish_span(self, span: Any, result: CallResult) -> None:
        span.set_attribute(gen_ai.GEN_AI_USAGE_INPUT_TOKENS, result.usage.input_tokens)
        span.set_attribute(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, result.usage.output_tokens)
        span.set_attribute(gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, result.usage.cached_input_tokens)
        if self.context.content_capture():
            span.set_attribute(
                gen_ai.GEN_AI_OUTPUT_MESSAGES,
                json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": result.text}]}]),
            )
