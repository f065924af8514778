"""Process-wide registry of in-process vLLM ``AsyncLLM`` engines, one per model configuration.

Why: an engine costs ~30 s to start and a GiB of KV cache. Every ``ChatVLLMEngine`` (one per
graph node, per ``bind``, per ``with_structured_output``) with the same configuration must reuse
the same engine, which also lets their requests share the prefix cache.

Sharing rules: :func:`acquire` counts a user (``ChatVLLMEngine.start()``), :func:`release` drops it
(``.shutdown()``) and stops the engine when the last user lets go; an engine started by a request
alone has no user and runs until :func:`shutdown_engines` (which stops every engine, users or not:
tests and exit) or until a holder's release. A start never overlaps the stop of the same
configuration (two engines' memory at once), a cancelled start is started again, and an engine
whose loop thread died (its output handler died with it) is replaced rather than handed out.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import gc
import itertools
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


@dataclass
class _Entry:
    future: concurrent.futures.Future[AsyncLLM]
    loop_generation: int  # the engine loop it is bound to (see EngineLoop.generation)
    users: int = 0
    # Which start of this configuration it is: a holder whose engine was stopped under it (by
    # shutdown_engines, say) sees a new epoch on its next request and counts itself again.
    epoch: int = 0


_lock = threading.Lock()
_engines: dict[EngineSpec, _Entry] = {}
# Configurations being stopped now: a new start of the same one waits for the stop to finish.
_stopping: dict[EngineSpec, threading.Event] = {}
_epochs = itertools.count(1)


def _failed(fut: concurrent.futures.Future[Any]) -> bool:
    # A cancelled future raises CancelledError from exception(): ask cancelled() first.
    return fut.done() and (fut.cancelled() or fut.exception() is not None)


async def _start(spec: EngineSpec, previous_stop: threading.Event | None) -> AsyncLLM:
    if previous_stop is not None:  # the same configuration is still shutting down
        await asyncio.to_thread(previous_stop.wait)
    # Construction blocks for tens of seconds (it waits for the engine core process); run it in
    # a worker thread so other engines on the shared loop keep serving meanwhile.
    engine = await asyncio.to_thread(_construct, spec)
    # atexit runs handlers last-in-first-out: re-registering after vLLM registered its own makes
    # ours run first, so engines are stopped in order instead of their processes being reaped.
    atexit.unregister(shutdown_engines)
    atexit.register(shutdown_engines)
    return engine


def _construct(spec: EngineSpec) -> AsyncLLM:
    apply_vllm_env_defaults(spec.model)
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(spec.engine_args())


def _get_future(spec: EngineSpec, users: int = 0) -> tuple[concurrent.futures.Future[AsyncLLM], int]:
    stale = None
    with _lock:
        generation = ENGINE_LOOP.ensure_generation()
        entry = _engines.get(spec)
        if entry is not None and entry.loop_generation != generation:
            stale, entry = entry, None  # its loop thread died: the engine cannot serve any more
        if entry is None or _failed(entry.future):
            fut = ENGINE_LOOP.submit(_start(spec, _stopping.get(spec)))
            entry = _engines[spec] = _Entry(fut, generation, users=entry.users if entry else 0,
                                            epoch=next(_epochs))
        entry.users += users
        fut, epoch = entry.future, entry.epoch
    if stale is not None:
        threading.Thread(target=_shutdown_future, args=(stale.future, 120.0), daemon=True).start()
    return fut, epoch


def get_engine(spec: EngineSpec) -> AsyncLLM:
    """The shared engine for ``spec``, started on first use (blocking); no user is counted."""
    return _get_future(spec)[0].result()


async def aget_engine(spec: EngineSpec) -> AsyncLLM:
    return await asyncio.wrap_future(_get_future(spec)[0])


def acquire(spec: EngineSpec) -> concurrent.futures.Future[AsyncLLM]:
    """Count a user of the engine for ``spec`` (starting it if needed); pair with :func:`release`."""
    return _get_future(spec, users=1)[0]


def acquire_epoch(spec: EngineSpec) -> tuple[concurrent.futures.Future[AsyncLLM], int]:
    """:func:`acquire`, and which start of the engine the user now holds (see :func:`epoch`)."""
    return _get_future(spec, users=1)


def epoch(spec: EngineSpec) -> int | None:
    """Which start of the engine for ``spec`` is registered now (None: none is)."""
    with _lock:
        entry = _engines.get(spec)
        return entry.epoch if entry else None


def release(spec: EngineSpec, timeout: float | None = 120.0, *, held: bool = True) -> bool:
    """Drop one user (``held=False``: a caller that never acquired); the engine stops when no user
    is left. Returns whether it was stopped."""
    with _lock:
        entry = _engines.get(spec)
        if entry is None:
            return False
        if held:
            entry.users = max(0, entry.users - 1)
        if entry.users:
            return False
    shutdown_engine(spec, timeout)
    return True


def users(spec: EngineSpec) -> int:
    with _lock:
        entry = _engines.get(spec)
        return entry.users if entry else 0


def running_specs() -> list[EngineSpec]:
    with _lock:
        return [s for s, e in _engines.items() if e.future.done() and not _failed(e.future)]


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
    except (Exception, concurrent.futures.CancelledError):
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
    """Stop the engine for ``spec`` now, whoever uses it (see :func:`release` for shared use)."""
    with _lock:
        entry = _engines.pop(spec, None)
        if entry is None:
            return
        stopped = _stopping[spec] = threading.Event()
    try:
        _shutdown_future(entry.future, timeout)
        del entry
        gc.collect()  # drop the front end's sockets and buffers now, not at some later GC
    finally:
        with _lock:
            if _stopping.get(spec) is stopped:
                del _stopping[spec]
        stopped.set()


def shutdown_engines(timeout: float | None = 120.0) -> None:
    """Stop every engine this process started (their engine-core and worker processes too), whoever
    still uses them: for exit and for tests. Code sharing an engine calls ``model.shutdown()``
    (:func:`release`) instead."""
    with _lock:
        specs = list(_engines)
    for spec in specs:
        shutdown_engine(spec, timeout)


async def ashutdown_engines() -> None:
    await asyncio.to_thread(shutdown_engines)
