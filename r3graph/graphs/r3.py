"""The R3 graph builder: prepare -> reason -> reflect <-> refine -> finalize."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.types import CachePolicy, RetryPolicy

from r3graph.cache import check_cache_key, node_cache_key
from r3graph.context import R3Context
from r3graph.errors import R3ConfigError, R3ModelError
from r3graph.graphs.routing import (
    after_reason,
    after_refine,
    after_reflect_plan,
    after_reflect_verdict,
    after_review,
)
from r3graph.image_generation import ImageBackend
from r3graph.nodes.check import CheckNode
from r3graph.nodes.common import R3Deps
from r3graph.nodes.finalize import finalize
from r3graph.nodes.prepare import PrepareNode
from r3graph.nodes.reason import ReasonNode
from r3graph.nodes.refine import RefineNode
from r3graph.nodes.reflect import ReflectNode, ReflectVerdictNode
from r3graph.nodes.review import review
from r3graph.prompts import PromptPack, load_pack
from r3graph.reflect import ReflectStrategy
from r3graph.state import R3Input, R3Output, R3State


def _retry_transient(exc: Exception) -> bool:
    return isinstance(exc, R3ModelError) and exc.transient


def default_retry_policy(max_attempts: int = 3) -> RetryPolicy:
    """Retry only what another attempt can fix (timeouts, dropped connections, 429/5xx)."""
    return RetryPolicy(max_attempts=max_attempts, initial_interval=0.5, backoff_factor=2.0, retry_on=_retry_transient)


def build_r3_graph(
    model: BaseChatModel,
    *,
    pack: str | Path | PromptPack | dict[str, Any] = "default",
    strategies: dict[str, ReflectStrategy] | None = None,
    retry_policy: RetryPolicy | None = None,
    image_backend: ImageBackend | None = None,
) -> StateGraph[R3State, R3Context, R3Input, R3Output]:
    """The Reason -> Reflect -> Refine loop as an uncompiled ``StateGraph``.

    prepare -> reason -> reflect (-> check x k -> reflect_verdict) (-> reflect for iterated passes)
    -> [review] -> refine -> reflect ... -> finalize; routing reads the round counter and verdicts in
    the state. Each check is a task of its own (``Send``), with its own retries.

    Model-calling nodes carry a ``CachePolicy`` keyed on what makes their calls the same
    (r3graph/cache.py); it takes effect when you compile with a cache
    (``.compile(cache=InMemoryCache())``), and only for deterministic (greedy or seeded) stages.

    Compile it yourself (``.compile(checkpointer=...)``) and pass per-request settings as
    ``context=R3Context(...)``. ``strategies`` registers extra reflect strategies by name.

    ``image_backend`` enables output mode "image" (``R3Context(output="image")``): reason generates
    an image from the instruction, reflect has ``model`` judge it against the instruction, refine
    edits it. The same nodes; only the artefact differs.
    """
    if not isinstance(model, BaseChatModel):
        raise R3ConfigError(f"model must be a LangChain BaseChatModel, got {type(model).__name__}")
    policy = retry_policy or default_retry_policy()
    if image_backend is not None and not isinstance(image_backend, ImageBackend):
        raise R3ConfigError(
            f"image_backend must have agenerate/aedit coroutines and a model name, got {type(image_backend).__name__}"
        )
    deps = R3Deps(model=model, pack=load_pack(pack), strategies=dict(strategies or {}),
                  max_attempts=policy.max_attempts, image_backend=image_backend)

    graph = StateGraph(R3State, context_schema=R3Context.graph_schema(), input_schema=R3Input, output_schema=R3Output)
    graph.add_node("prepare", PrepareNode(deps))
    # Nodes are callable objects holding their dependencies; LangGraph's typing stubs only
    # describe plain functions, hence the ignores.
    for name, node in (("reason", ReasonNode(deps)), ("reflect", ReflectNode(deps)),
                       ("reflect_verdict", ReflectVerdictNode(deps)), ("refine", RefineNode(deps))):
        graph.add_node(name, node, retry_policy=policy,  # type: ignore[call-overload]
                       cache_policy=CachePolicy(key_func=node_cache_key(name)))
    # A Send's task, not the graph state, is the check node's input.
    graph.add_node("check", CheckNode(deps), retry_policy=policy,  # type: ignore[call-overload]
                   cache_policy=CachePolicy(key_func=check_cache_key))
    graph.add_node("review", review)
    graph.add_node("finalize", finalize)
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "reason")
    graph.add_conditional_edges("reason", after_reason, ["reflect", "finalize"])
    verdict_targets = ["reflect", "review", "refine", "finalize"]
    graph.add_conditional_edges("reflect", after_reflect_plan, ["check", *verdict_targets])
    # A plain edge (a router per check costs a state read each): sequential checks are sent on one
    # by one from reflect_verdict, which concludes only once every answer is in.
    graph.add_edge("check", "reflect_verdict")
    graph.add_conditional_edges("reflect_verdict", after_reflect_verdict, ["check", *verdict_targets])
    graph.add_conditional_edges("review", after_review, ["refine", "finalize"])
    graph.add_conditional_edges("refine", after_refine, ["reflect", "finalize"])
    graph.add_edge("finalize", END)
    return graph
