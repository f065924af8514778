"""Validate the request and normalise its images once, before any model call."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime

from r3graph.cache import cache_scopes
from r3graph.context import R3Context, resolve_context
from r3graph.errors import R3ConfigError, R3InputError
from r3graph.images import normalise_images
from r3graph.limits import MAX_IMAGES_PER_REQUEST
from r3graph.nodes.common import R3Deps, run_attributes
from r3graph.reflect import BUILTIN_STRATEGIES
from r3graph.state import R3State, Usage
from r3graph.tracing import run_spans

MAX_INSTRUCTION_CHARS = 8000
MAX_IMAGES = MAX_IMAGES_PER_REQUEST
CHECKPOINTER_KEY = "__pregel_checkpointer"  # langgraph's config key (langgraph._internal._constants)


class PrepareNode:
    def __init__(self, deps: R3Deps) -> None:
        self.deps = deps

    async def __call__(self, state: R3State, runtime: Runtime[Any]) -> dict[str, Any]:
        # The run's clock starts now: fetching and decoding images spend the same run_timeout_s.
        started = time.time()
        context = resolve_context(runtime.context)
        if context.review and get_config().get("configurable", {}).get(CHECKPOINTER_KEY) is None:
            raise R3ConfigError(
                "review=True pauses the run for a person, which needs a checkpointer: compile the graph with "
                "one (graph.compile(checkpointer=...)) and pass a thread_id, or set review=False"
            )
        # Resolve names now so a typo fails before the first model call, not after reason.
        self.deps.strategy_for(context)
        pack = self.deps.pack_for(context)
        if context.output == "image":
            self.deps.require_image_backend()  # fails now, not after a plan, when the graph has none
            if context.image.plan and pack.reason is None:
                raise R3ConfigError(
                    f"image.plan=True, but prompt pack {pack.name!r} has no image 'reason' (plan) template"
                )
        instruction = state.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise R3InputError(f"instruction must be a non-empty string, got {type(instruction).__name__}")
        if len(instruction) > MAX_INSTRUCTION_CHARS:
            raise R3InputError(f"instruction is {len(instruction)} characters; the limit is {MAX_INSTRUCTION_CHARS}")
        try:
            instruction.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates: no model client can send them
            raise R3InputError(
                f"instruction has an unpaired surrogate ({instruction[exc.start]!r} at character {exc.start}); "
                "decode the text properly (surrogate pairs are not UTF-8)"
            ) from exc
        images = state.get("images")
        if context.output == "image":
            if images:
                raise R3InputError("output='image' generates from the instruction alone: pass no images")
            images = []
        else:
            limit = getattr(self.deps.model, "max_images_per_prompt", None)  # the in-process engine's own
            if isinstance(limit, int) and isinstance(images, list | tuple) and len(images) > limit:
                raise R3InputError(f"images must hold 1 to {limit} images for this model, got {len(images)}")
        urls = [] if context.output == "image" else \
            await normalise_images(images, context, deadline=started + context.run_timeout_s)
        run_id = uuid.uuid4().hex
        update: dict[str, Any] = {
            "instruction": instruction.strip(),
            "images": urls,
            "rounds": [],
            "reflect_pass": 0,
            "checks": None,
            "check_answers": None,
            "image_digests": [hashlib.sha256(url.encode()).hexdigest() for url in urls],
            "cache_scopes": cache_scopes(self.deps.model, pack, context, builtin_strategy=self._builtin(context)),
            "run_id": run_id,
            "deadline": started + context.run_timeout_s,
            "usage": Usage(),
        }
        run_spans.start(run_id, run_attributes(context, len(urls)))
        return update

    def _builtin(self, context: R3Context) -> bool:
        """Whether the strategy is a built-in one by name (custom ones are never cached)."""
        name = context.reflect
        return isinstance(name, str) and name in BUILTIN_STRATEGIES and name not in self.deps.strategies
