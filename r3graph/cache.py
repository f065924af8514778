"""Cache keys for the R3 nodes (LangGraph ``CachePolicy``): what makes two model calls the same.

The builder puts a ``CachePolicy`` on reason, reflect, check, reflect_verdict and refine; it does
nothing until the graph is compiled with a cache (``compile(cache=InMemoryCache())``, or
``SqliteCache`` from langgraph-checkpoint-sqlite). A node's cached writes replay its result without
calling the model, so a key must hold everything the writes depend on:

- the node's *scope*: the model's identity, the prompt pack, the sampling of every stage the node
  may call and the strategy settings, hashed once per run by the prepare node (:func:`cache_scopes`);
- the images' content hashes, the instruction, and what the node reads of the trajectory (the
  draft, the previous pass's findings, the checks and their answers), never the round number:
  the same draft reflected in another round is the same call.

Only deterministic calls are cached: a stage sampled without a seed gives its node no scope, and
its key is a fresh random one (LangGraph stores the entry, nothing ever reads it back). Custom
strategy objects and output mode "image" are not cached (their determinism is not ours to know).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel

from r3graph.calls import model_name
from r3graph.context import R3Context, Sampling
from r3graph.prompts import PromptPack
from r3graph.state import R3State

REFLECT_STAGES = ("questions", "answer", "judge", "claims", "verify", "summarise")
NODE_STAGES: dict[str, tuple[str, ...]] = {
    "reason": ("reason",),
    "reflect": REFLECT_STAGES,
    "reflect_verdict": REFLECT_STAGES,
    "refine": ("refine", "refine_blind"),
    "check:answer": ("answer",),
    "check:verify": ("verify",),
}


def deterministic(sampling: Sampling) -> bool:
    """Greedy (temperature 0) or seeded: the same request gives the same reply."""
    return sampling.temperature == 0.0 or sampling.seed is not None


def digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def model_identity(model: BaseChatModel) -> str:
    """The model's class, name and the settings it identifies itself by (vLLM engine: model dir,
    block size, speculative decoding)."""
    params = getattr(model, "_identifying_params", {}) or {}
    return digest(f"{type(model).__module__}.{type(model).__qualname__}", model_name(model), params)


_PACK_DIGESTS: dict[int, tuple[PromptPack, str]] = {}


def pack_digest(pack: PromptPack) -> str:
    """A pack's templates, hashed once per pack object (packs are frozen). Keyed by id(); the value
    keeps the pack alive, so an id cannot be reused for another pack while it is cached."""
    cached = _PACK_DIGESTS.get(id(pack))
    if cached is None:
        if len(_PACK_DIGESTS) >= 64:
            _PACK_DIGESTS.clear()
        cached = _PACK_DIGESTS[id(pack)] = (pack, digest(pack.model_dump(mode="json")))
    return cached[1]


def cache_scopes(model: BaseChatModel, pack: PromptPack, context: R3Context, builtin_strategy: bool) -> dict[str, str]:
    """Each cacheable node's scope for this run; a node whose calls are not deterministic gets none."""
    if context.output != "text":
        return {}
    base = (model_identity(model), pack_digest(pack))
    strategy = (str(context.reflect), context.num_questions, context.structured_judge)
    scopes = {}
    for node, stages in NODE_STAGES.items():
        reflects = node.startswith("reflect")
        if reflects and not builtin_strategy:
            continue
        samplings = [context.sampling_for(stage) for stage in stages]
        if all(deterministic(s) for s in samplings):
            scopes[node] = digest(node, base, strategy if reflects else None, [s.as_kwargs() for s in samplings])
    return scopes


def _never() -> str:
    return f"uncached:{uuid.uuid4().hex}"


def _reads(node: str, state: R3State) -> list[Any]:
    """What ``node`` reads of the state, beside its scope (see the module docstring)."""
    rounds = state.get("rounds") or []
    current = rounds[-1] if rounds else None
    common = [state.get("instruction"), state.get("image_digests")]
    if node == "reason" or current is None:
        return common
    if node == "refine":
        critique = current.reflection.critique if current.reflection else ""
        return [*common, current.draft, critique]
    pass_index = state.get("reflect_pass", 0)
    previous = current.reflection.model_dump(mode="json") if current.reflection and pass_index else None
    reads = [*common, current.draft, pass_index, previous]
    if node == "reflect_verdict":
        checks = state.get("checks")
        reads += [checks.model_dump(mode="json") if checks else None, state.get("check_answers")]
    return reads


def node_cache_key(node: str) -> Callable[[R3State], str]:
    def key(state: R3State) -> str:
        scope = (state.get("cache_scopes") or {}).get(node)
        return digest(scope, _reads(node, state)) if scope else _never()

    key.__name__ = f"{node}_cache_key"
    return key


def check_cache_key(task: dict[str, Any]) -> str:
    """A check's key: its scope (model, pack, stage sampling), the images and what its prompt is
    rendered from (stage, instruction, item)."""
    scope = task.get("cache_scope")
    reads = [task["image_digests"], task["stage"], task["instruction"], task["item"]]
    return digest(scope, reads) if scope else _never()
