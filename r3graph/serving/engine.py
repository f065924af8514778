"""``ChatVLLMEngine``: a LangChain chat model over an in-process vLLM ``AsyncLLM``.

The engine core runs in vLLM's own child process (its default, and the fast one on CPU); this
process holds the ``AsyncLLM`` front end on a background loop (see ``_loop``), shared by every
instance with the same configuration (see ``registry``). Nothing starts at import time: the
engine starts on the first request or on ``start()``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import InputTokenDetails, UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from r3graph.limits import MAX_IMAGES_PER_REQUEST
from r3graph.serving._loop import ENGINE_LOOP
from r3graph.serving.env import default_enforce_eager
from r3graph.serving.messages import to_vllm_conversation
from r3graph.serving.registry import EngineSpec, acquire_epoch, aget_engine, epoch, release
from r3graph.serving.structured import structured_runnable

_SAMPLING_KEYS = ("temperature", "top_p", "max_tokens", "stop", "seed")
# vLLM-only sampling options passed through as given (the same names vLLM's server accepts in
# extra_body), so code can move between the engine and the server unchanged.
_VLLM_SAMPLING_KEYS = ("top_k", "min_p", "min_tokens", "ignore_eos", "repetition_penalty",
                       "presence_penalty", "frequency_penalty", "stop_token_ids")


@dataclass
class _Final:
    """Accumulated facts about one finished request (usage and finish reason)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    finish_reason: str | None = None
    stop_reason: str | int | None = None

    def observe(self, out: Any) -> None:
        if out.prompt_token_ids is not None:
            self.input_tokens = len(out.prompt_token_ids)
        if out.num_cached_tokens is not None:
            self.cached_tokens = out.num_cached_tokens
        comp = out.outputs[0]
        self.output_tokens += len(comp.token_ids)  # DELTA mode: each output carries new tokens only
        if comp.finish_reason is not None:
            self.finish_reason, self.stop_reason = comp.finish_reason, comp.stop_reason

    def usage(self) -> UsageMetadata:
        return UsageMetadata(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.input_tokens + self.output_tokens,
            input_token_details=InputTokenDetails(cache_read=self.cached_tokens),
        )

    def metadata(self, model: str) -> dict[str, Any]:
        return {"finish_reason": self.finish_reason, "stop_reason": self.stop_reason,
                "model_name": model, "model_provider": "vllm"}


def _structured_params(kwargs: dict[str, Any]) -> Any:
    """vLLM StructuredOutputsParams from our ``structured_outputs`` kwarg or an OpenAI response_format."""
    from vllm.sampling_params import StructuredOutputsParams

    so = kwargs.pop("structured_outputs", None)
    rf = kwargs.pop("response_format", None)
    if so is None and rf is not None:
        if rf.get("type") == "json_schema":
            so = {"json": rf["json_schema"]["schema"]}
        elif rf.get("type") == "json_object":
            so = {"json_object": True}
    if so is None or isinstance(so, StructuredOutputsParams):
        return so
    return StructuredOutputsParams(**so)


class ChatVLLMEngine(BaseChatModel):
    """LangChain chat model backed by a shared in-process vLLM engine."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    # Tells R3's callers they may pass an OpenAI-style response_format kwarg (see r3graph.calls).
    supports_response_format: ClassVar[bool] = True
    # And a chat_template_kwargs kwarg (e.g. {"enable_thinking": False}), merged into the template's.
    supports_chat_template_kwargs: ClassVar[bool] = True

    model: str = Field(description="HF-format model directory (or name vLLM can load offline)")
    dtype: str = "auto"
    max_model_len: int | None = None  # None: the model's own limit (scenes-vlm: 512)
    # None: eager on CPU builds only, where torch.compile costs ~50 s more start-up for little gain.
    enforce_eager: bool | None = None
    block_size: int = 32  # prefix caching only caches full blocks; prompts are ~100-300 tokens
    enable_prefix_caching: bool = True
    max_images_per_prompt: int = MAX_IMAGES_PER_REQUEST
    compact_json: bool = True  # structured output without free whitespace (engine-wide in vLLM)
    speculative_config: dict[str, Any] | None = None
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    _holds: bool = PrivateAttr(default=False)  # counted as a user of the shared engine (start())
    _epoch: int | None = PrivateAttr(default=None)  # which start of that engine it is counted on

    temperature: float | None = 0.0  # greedy by default: reproducible runs and tests
    top_p: float | None = None
    max_tokens: int | None = 512
    stop: list[str] | None = None
    seed: int | None = None

    @property
    def _llm_type(self) -> str:
        return "vllm-engine"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "block_size": self.block_size,
                "speculative_config": self.speculative_config}

    @property
    def spec(self) -> EngineSpec:
        return EngineSpec.create(
            model=self.model, dtype=self.dtype, max_model_len=self.max_model_len,
            enforce_eager=default_enforce_eager() if self.enforce_eager is None else self.enforce_eager,
            block_size=self.block_size,
            enable_prefix_caching=self.enable_prefix_caching,
            max_images_per_prompt=self.max_images_per_prompt, compact_json=self.compact_json,
            speculative_config=self.speculative_config, engine_kwargs=self.engine_kwargs,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ChatVLLMEngine:
        """Start (or attach to) the shared engine now instead of on the first request, as one of its
        users: it keeps running until every user has called :meth:`shutdown` (or at exit)."""
        if not self._holds:
            self._holds = True
            fut, self._epoch = acquire_epoch(self.spec)
            fut.result()
        return self

    async def astart(self) -> ChatVLLMEngine:
        if not self._holds:
            self._holds = True
            fut, self._epoch = acquire_epoch(self.spec)
            await asyncio.wrap_future(fut)
        return self

    def shutdown(self) -> None:
        """Let go of the shared engine; the last user's release stops it. An instance that never
        called :meth:`start` stops it only when no user holds it (one started by requests alone)."""
        held, self._holds = self._holds, False
        release(self.spec, held=held)

    async def ashutdown(self) -> None:
        await asyncio.to_thread(self.shutdown)

    # -- request plumbing (runs on the engine loop) ----------------------------------------
    def _sampling_params(self, stop: list[str] | None, kwargs: dict[str, Any], delta: bool) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        kwargs = dict(kwargs)
        if kwargs.pop("n", 1) != 1:
            raise ValueError("ChatVLLMEngine supports n=1 only")
        if "max_completion_tokens" in kwargs:
            kwargs["max_tokens"] = kwargs.pop("max_completion_tokens")
        params = {k: getattr(self, k) for k in _SAMPLING_KEYS}
        params.update({k: kwargs.pop(k) for k in _SAMPLING_KEYS if k in kwargs})
        extra = {k: kwargs.pop(k) for k in _VLLM_SAMPLING_KEYS if k in kwargs}
        if stop is not None:
            params["stop"] = stop
        structured = _structured_params(kwargs)
        unknown = set(kwargs) - {"ls_structured_output_format"}
        if unknown:
            raise TypeError(f"unsupported generation kwargs: {sorted(unknown)}")
        return SamplingParams.from_optional(
            n=1,
            structured_outputs=structured,
            output_kind=RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY,
            **params,
            **extra,
        )

    async def _engine(self) -> Any:
        spec = self.spec
        if self._holds and epoch(spec) != self._epoch:
            # Our engine was stopped under us (shutdown_engines()); the one that serves us now
            # must count us too, or another user's release would stop it mid-use.
            fut, self._epoch = acquire_epoch(spec)
            return await asyncio.wrap_future(fut)
        return await aget_engine(spec)

    async def _outputs(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any], delta: bool
    ) -> AsyncIterator[Any]:
        from vllm.renderers import ChatParams

        engine = await self._engine()
        kwargs = dict(kwargs)
        template_kwargs = dict(kwargs.pop("chat_template_kwargs", None) or {})
        sampling = self._sampling_params(stop, kwargs, delta)
        # Decoding the images (PIL) is CPU work: in a thread, not on the loop every request shares.
        conversation: list[Any] = await asyncio.to_thread(to_vllm_conversation, messages)
        # The model's own chat template, applied by vLLM's renderer (image placeholders included).
        # The renderer does not add the assistant turn's opening by default (LLM.chat and the
        # OpenAI server do): without it the model continues the user's turn instead of answering.
        params = ChatParams(chat_template_kwargs={"add_generation_prompt": True, **template_kwargs})
        _, (prompt,) = await engine.renderer.render_chat_async([conversation], params)
        async for out in engine.generate(prompt, sampling, f"r3-{uuid.uuid4().hex}"):
            yield out

    async def _complete(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        final, text = _Final(), ""
        async for out in self._outputs(messages, stop, kwargs, delta=False):
            final.observe(out)
            text = out.outputs[0].text
        msg = AIMessage(content=text, usage_metadata=final.usage(),
                        response_metadata=final.metadata(self.model))
        return ChatResult(generations=[ChatGeneration(message=msg)])

    async def _chunks(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AsyncIterator[ChatGenerationChunk]:
        final = _Final()
        async for out in self._outputs(messages, stop, kwargs, delta=True):
            final.observe(out)
            if out.outputs[0].text:
                yield ChatGenerationChunk(message=AIMessageChunk(content=out.outputs[0].text))
        # Usage once, on a closing empty chunk, so summing chunks counts it exactly once.
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=final.usage(), chunk_position="last",
                                   response_metadata=final.metadata(self.model)),
        )

    # -- LangChain hooks -------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if ENGINE_LOOP.in_loop_thread():
            raise RuntimeError("call ainvoke from the engine loop, not invoke")
        return ENGINE_LOOP.submit(self._complete(messages, stop, kwargs)).result()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await ENGINE_LOOP.run(self._complete(messages, stop, kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in ENGINE_LOOP.bridge_sync(lambda: self._chunks(messages, stop, kwargs)):
            if run_manager and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in ENGINE_LOOP.bridge_async(lambda: self._chunks(messages, stop, kwargs)):
            if run_manager and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def with_structured_output(
        self,
        schema: type[BaseModel] | dict[str, Any],
        *,
        include_raw: bool = False,
        method: Literal["json_schema", "json_mode"] = "json_schema",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Constrain decoding to ``schema`` with vLLM structured outputs, then parse the JSON."""
        if kwargs:
            raise TypeError(f"unsupported arguments: {sorted(kwargs)}")
        return structured_runnable(self, schema, include_raw=include_raw, method=method)
