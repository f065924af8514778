"""Validate the request and normalise its images once, before any model call."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from langgraph.runtime import Runtime

from r3graph.cache import cache_scopes
from r3graph.context import R3Context, resolve_context
from r3graph.errors import R3ConfigError, R3InputError
from r3graph.images import normalise_image
from r3graph.nodes.common import R3Deps, run_attributes
from r3graph.reflect import BUILTIN_STRATEGIES
from r3graph.state import R3State, Usage
from r3graph.tracing import run_spans

MAX_INSTRUCTION_CHARS = 8000
MAX_IMAGES = 8


class PrepareNode:
    def __init__(self, deps: R3Deps) -> None:
        self.deps = deps

    async def __call__(self, state: R3State, runtime: Runtime[Any]) -> dict[str, Any]:
        context = resolve_context(runtime.context)
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
        images = state.get("images")
        if context.output == "image":
            if images:
                raise R3InputError("output='image' generates from the instruction alone: pass no images")
            images = []
        elif isinstance(images, str | bytes) or not isinstance(images, list | tuple):
            raise R3InputError("images must be a list (of paths, URLs, bytes, data URLs or PIL images)")
        elif not 1 <= len(images) <= MAX_IMAGES:
            raise R3InputError(f"images must hold 1 to {MAX_IMAGES} images, got {len(images)}")
        urls = [
            await normalise_image(
                image,
                index=i,
                max_bytes=context.max_image_bytes,
                max_pixels=context.max_image_pixels,
                allow_remote=context.allow_remote_images,
                allow_private_hosts=context.allow_private_image_hosts,
                allow_paths=context.allow_file_paths,
                path_root=context.image_root,
                fetch_timeout_s=min(context.call_timeout_s, 30.0),
            )
            for i, image in enumerate(images)
        ]
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
            "deadline": time.time() + context.run_timeout_s,
            "usage": Usage(),
        }
        run_spans.start(run_id, run_attributes(context, len(urls)))
        return update

    def _builtin(self, context: R3Context) -> bool:
        """Whether the strategy is a built-in one by name (custom ones are never cached)."""
        name = context.reflect
        return isinstance(name, str) and name in BUILTIN_STRATEGIES and name not in self.deps.strategies
