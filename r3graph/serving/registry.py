"""Process-wide registry of in-process vLLM ``AsyncLLM`` engines, one per model configuration.

Why: an engine costs ~30 s to start and a GiB of KV cache. Every ``ChatVLLMEngine`` (one per
graph node, per ``bind``, per ``with_structured_output``) with the same configuration must reuse
the same engine, which also lets their requests share the prefix cache.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import gc
import json
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from r3graph.limits import MAX_IMAGES_PER_REQUEST
from r3graph.serving._loop import ENGINE_LOOP
from r3graph.serving.env import apply_vllm_env_defaults

if TYPE_CHECKING:
    from vllm.v1.engine.async_llm import AsyncLLM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSpec:
    """Hashable engine configuration; dict-valued options are stored as canonical JSON."""

    model: str
    dtype: str = "auto"
    max_model_len: int | None = None
    enforce_eager: bool = True  # ChatVLLMEngine resolves its None (auto) before building the spec
    block_size: int = 32
    enable_prefix_caching: bool = True
    max_images_per_prompt: int = MAX_IMAGES_PER_REQUEST
    compact_json: bool = True
    speculative_config_json: str = "null"
    engine_kwargs_json: str = "{}"

    @classmethod
    def create(
        cls,
        *,
        speculative_config: dict[str, Any] | None = None,
        engine_kwargs: dict[str, Any] | None = None,
        **fields: Any,
    ) -> EngineSpec:
        return cls(
            speculative_config_json=json.dumps(speculative_config, sort_keys=True),
            engine_kwargs_json=json.dumps(engine_kwargs or {}, sort_keys=True, default=str),
            **fields,
        )

    def engine_args(self) -> Any:
        from vllm import AsyncEngineArgs

        kwargs: dict[str, Any] = dict(
            model=self.model,
            dtype=self.dtype,
            max_model_len=self.max_model_len,
            enforce_eager=self.enforce_eager,
            block_size=self.block_size,  # CPU default 128 would leave our short prompts uncached
            enable_prefix_caching=self.enable_prefix_caching,
            limit_mm_per_prompt={"image": self.max_images_per_prompt},
            speculative_config=json.loads(self.speculative_config_json),
            disable_log_stats=True,
        )
        if self.compact_json:
            # Engine-wide in vLLM 0.32 (not per request): JSON without free whitespace, so weak
            # models cannot loop on blanks and strong ones spend fewer tokens.
            from vllm.config import StructuredOutputsConfig

            kwargs["structured_outputs_config"] = StructuredOutputsConfig(
                backend="xgrammar", disable_any_whitespace=True
            )
        kwargs.update(json.loads(self.engine_kwargs_json))
        return AsyncEngineArgs(**kwargs)


_lock = threading.Lock()
_engines: dict[EngineSpec, concurrent.futures.Future[AsyncLLM]] = {}


async def _start(spec: EngineSpec) -> AsyncLLM:
    apply_vllm_env_defaults(spec.model)
    from vllm.v1.engine.async_llm import AsyncLLM

    # Construction blocks for tens of seconds (it waits for the engine core process); run it in
    # a worker thread so other engines on the shared loop keep serving meanwhile.
    engine = await asyncio.to_thread(AsyncLLM.from_engine_args, spec.engine_args())
    # atexit runs handlers last-in-first-out: re-registering after vLLM registered its own makes
    # ours run first, so engines are stopped in order instead of their processes being reaped.
    atexit.unregister(shutdown_engines)
    atexit.register(shutdown_engines)
    return engine


def _get_future(spec: EngineSpec) -> concurrent.futures.Future[AsyncLLM]:
    with _lock:
        fut = _engines.get(spec)
        if fut is None or (fut.done() and fut.exception() is not None):
            fut = ENGINE_LOOP.submit(_start(spec))
            _engines[spec] = fut
        return fut


def get_engine(spec: EngineSpec) -> AsyncLLM:
    """The shared engine for ``spec``, started on first use (blocking)."""
    return _get_future(spec).result()


async def aget_engine(spec: EngineSpec) -> AsyncLLM:
    return await asyncio.wrap_future(_get_future(spec))


def running_specs() -> list[EngineSpec]:
    with _lock:
        return [s for s, f in _engines.items() if f.done() and f.exception() is None]


async def _cancel_output_handler(engine: AsyncLLM) -> None:
    handler = getattr(engine, "output_handler", None)
    if handler is not None and not handler.done():
        handler.cancel()
        with contextlib.suppress(BaseException):
            await handler
    engine.output_handler = None


def _shutdown_future(fut: concurrent.futures.Future[AsyncLLM], timeout: float | None) -> None:
    try:
        engine = fut.result(timeout=timeout)  # an engine still starting is waited for, then stopped
    except Exception:
        return
    try:
        # Stop the output handler before the engine core: otherwise it sees the core die and logs
        # a scary EngineDeadError traceback on every clean shutdown.
        ENGINE_LOOP.submit(_cancel_output_handler(engine)).result(timeout=10)
    except Exception:
        pass
    try:
        engine.shutdown()
    except Exception:  # shutdown must never mask the caller's own error
        log.exception("vLLM engine shutdown failed")
    # AsyncLLM.__del__ calls shutdown() again; at interpreter teardown that raises a noisy
    # "TypeError: 'NoneType' object is not callable". An instance attribute shadows the method.
    engine.shutdown = lambda *args, **kwargs: None  # type: ignore[method-assign]


def shutdown_engine(spec: EngineSpec, timeout: float | None = 120.0) -> None:
    with _lock:
        fut = _engines.pop(spec, None)
    if fut is not None:
        _shutdown_future(fut, timeout)
        del fut
        gc.collect()  # drop the front end's sockets and buffers now, not at some later GC


def shutdown_engines(timeout: float | None = 120.0) -> None:
    """Stop every engine this process started (their engine-core and worker processes too)."""
    with _lock:
        specs = list(_engines)
    for spec in specs:
        shutdown_engine(spec, timeout)


async def ashutdown_engines() -> None:
    await asyncio.to_thread(shutdown_engines)
