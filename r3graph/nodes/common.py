"""What every stage node shares: its dependencies, the run's caller, the stage span and error path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime
from opentelemetry.trace import Span

from r3graph.calls import StageCaller
from r3graph.context import R3Context, resolve_context
from r3graph.errors import R3ConfigError, R3Error, R3ModelError
from r3graph.image_calls import ImageCaller
from r3graph.image_generation import ImageBackend
from r3graph.images import image_data_url
from r3graph.prompts import PromptPack, load_named_pack
from r3graph.reflect import ReflectStrategy, resolve_strategy
from r3graph.state import R3State, Round
from r3graph.tracing import run_spans, stage_span


@dataclass
class R3Deps:
    """Fixed at build time: the model, the default pack, extra named strategies, retry attempts."""

    model: BaseChatModel
    pack: PromptPack
    strategies: dict[str, ReflectStrategy] = field(default_factory=dict)
    max_attempts: int = 3
    image_backend: ImageBackend | None = None
    # Image-mode views of the packs this graph has used, built once (every stage asks for its pack).
    # Keyed by id(); the value keeps the pack alive, so an id cannot be reused for another pack.
    _image_packs: dict[int, tuple[PromptPack, PromptPack]] = field(default_factory=dict, repr=False)

    def pack_for(self, context: R3Context) -> PromptPack:
        """The request's pack, with its image templates in output mode "image"."""
        pack = load_named_pack(context.pack) if context.pack else self.pack
        if context.output == "text":
            return pack
        cached = self._image_packs.get(id(pack))
        if cached is None:
            cached = self._image_packs[id(pack)] = (pack, pack.for_output(context.output))
        return cached[1]

    def require_image_backend(self) -> ImageBackend:
        if self.image_backend is None:
            raise R3ConfigError(
                "output='image' needs an image generator: build_r3_graph(model, image_backend=OmniImageClient(...))"
            )
        return self.image_backend

    def strategy_for(self, context: R3Context) -> ReflectStrategy:
        return resolve_strategy(context.reflect, self.strategies)

    def caller(
        self, state: R3State, context: R3Context, config: RunnableConfig, *, looking_at: bytes | None = None
    ) -> StageCaller:
        """Chat calls for one stage; they see the input images, or ``looking_at`` (a generated
        image, output mode "image") instead."""
        images = [image_data_url(looking_at, "PNG")] if looking_at is not None else list(state.get("images", []))
        return StageCaller(
            model=self.model,
            pack=self.pack_for(context),
            context=context,
            image_urls=images,
            run_config=config,
            deadline=state.get("deadline"),
            session_key=state.get("run_id"),
        )

    def image_caller(self, state: R3State, context: R3Context) -> ImageCaller:
        return ImageCaller(backend=self.require_image_backend(), context=context, deadline=state.get("deadline"))


def image_event(round_: Round) -> dict[str, Any]:
    """What a stream event says about a round's image: its size, not its bytes (events may cross a
    network; the bytes are in the state)."""
    return {"image_bytes": len(round_.image)} if round_.image is not None else {}


def best_round(rounds: list[Round], select: str) -> Round | None:
    """The round whose draft is the answer: the last, or the best-judged (later wins ties, since
    refine had a reason to change it). Unjudged rounds only count for ``last``."""
    if not rounds:
        return None
    if select == "best":
        judged = [r for r in rounds if r.reflection is not None]
        if judged:
            return max(reversed(judged), key=lambda r: r.reflection.score if r.reflection else 0.0)
    return rounds[-1]


def run_attributes(context: R3Context, images: int) -> dict[str, Any]:
    return {
        "r3.max_rounds": context.max_rounds,
        "r3.reflect.strategy": getattr(context.reflect, "name", None) or str(context.reflect),
        "r3.select": context.select,
        "r3.images": images,
    }


@asynccontextmanager
async def stage(
    name: str, state: R3State, runtime: Runtime[Any], attributes: dict[str, Any], *, max_attempts: int
) -> AsyncIterator[tuple[R3Context, Span]]:
    """Open the stage span under the run span; turn any failure into an :class:`R3Error` that
    carries the best draft so far, and close the run span when the failure is final."""
    context = resolve_context(runtime.context)
    run_id = state.get("run_id")
    if run_id and run_spans.get(run_id) is None:
        run_spans.start(run_id, run_attributes(context, len(state.get("images", []))), resumed=True)
    rounds = list(state.get("rounds", []))
    try:
        with stage_span(name, run_id, {"r3.stage": name, **attributes}) as span:
            yield context, span
    except GraphBubbleUp:
        # An interrupt (human review) pauses the run: close its span now; a resume opens a new one
        # (marked r3.resumed) rather than keeping spans of paused runs in memory indefinitely.
        run_spans.end(run_id, {"r3.interrupted_at": name})
        raise
    except (Exception, asyncio.CancelledError) as exc:
        best = best_round(rounds, context.select)
        error = exc
        if not isinstance(exc, R3Error) and isinstance(exc, Exception):
            error = R3Error(f"{name} failed: {type(exc).__name__}: {exc}", stage=name)
            error.__cause__ = exc
        if isinstance(error, R3Error):
            if error.best_draft is None and best is not None:
                error.best_draft = best.draft
            if error.best_image is None and best is not None:
                error.best_image = best.image
            if not error.rounds:
                error.rounds = [r.model_dump() for r in rounds]
            error.stage = error.stage or name
        retry_coming = (
            isinstance(error, R3ModelError)
            and error.transient
            and _attempt(runtime) < max_attempts
        )
        if not retry_coming:
            run_spans.end(run_id, {"r3.failed_stage": name}, error=error)
        if error is exc:
            raise
        raise error from exc


def _attempt(runtime: Runtime[Any]) -> int:
    info = getattr(runtime, "execution_info", None)
    return getattr(info, "node_attempt", 1) if info is not None else 1
