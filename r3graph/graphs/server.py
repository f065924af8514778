"""The graph that ``langgraph dev`` / LangGraph Server serves (``langgraph.json`` -> ``graph``).

    langgraph dev --host 127.0.0.1 --port 2024 --no-browser     # from the repository root

The model comes from the environment (see :func:`r3graph.backends.backend_from_env`):
``R3GRAPH_BASE_URL`` -> a running vLLM server; otherwise the in-process engine over
``R3GRAPH_MODEL_DIR``, else a plugin's default model (r3graph-scenes: scenes-vlm; with neither, importing
this module is an R3ConfigError that says so); ``R3GRAPH_BACKEND=scripted`` -> the SCRIPTED stand-in
from r3graph-scenes (no weights, for tests and demos). ``R3GRAPH_PACK`` overrides the prompt pack.

Over HTTP the run's ``context`` comes from the client, so it is not handed to R3 as is: clients set
only :class:`ServerContext` (depth, strategy, selection, review), and what reads files or the network
stays with the operator. Images are sent as ``data:`` URLs; file paths are refused unless the
operator sets ``R3GRAPH_IMAGE_ROOT`` (then only files inside that folder are read); remote URLs are
never fetched. The server supplies the checkpointer, so threads, ``review`` interrupts and resumes
(``Command(resume=...)``) work through its API.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Literal

from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from r3graph.backends import backend_from_env
from r3graph.context import R3Context, describe_validation_error
from r3graph.errors import R3ConfigError
from r3graph.graphs.r3 import build_r3_graph
from r3graph.state import R3Input, R3Output, Round, StopReason, Usage

MAX_ROUNDS_LIMIT = int(os.environ.get("R3GRAPH_MAX_ROUNDS_LIMIT", "4"))


class ServerContext(BaseModel):
    """What an HTTP client may choose per run (anything else is rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rounds: int = Field(default=1, ge=0, le=MAX_ROUNDS_LIMIT)
    reflect: Literal["self_questions", "judge", "multi_step", "none"] = "self_questions"
    num_questions: int = Field(default=3, ge=1, le=8)
    reflect_passes: int = Field(default=1, ge=1, le=3)
    select: Literal["last", "best"] = "last"
    review: bool = False

    def __init__(self, **data: Any) -> None:
        # A refused setting is the client's to fix: say which, as R3ConfigError, not a raw pydantic error.
        if any(not isinstance(key, str) for key in data):
            raise R3ConfigError("context keys must be field names (strings)")
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise R3ConfigError(
                f"context refused by this server: {describe_validation_error(exc)}; clients may set only "
                f"{', '.join(ServerContext.model_fields)}"
            ) from exc


class ServerState(R3Input, total=False):
    output: str
    rounds: list[Round]
    stop_reason: StopReason
    usage: Usage


def r3_context(client: ServerContext | dict[str, Any] | None) -> R3Context:
    """The client's choices plus the operator's image policy."""
    if client is not None and not isinstance(client, ServerContext | dict):
        raise R3ConfigError(f"context must be a dict of {', '.join(ServerContext.model_fields)}")
    chosen = client if isinstance(client, ServerContext) else ServerContext(**(client or {}))
    root = os.environ.get("R3GRAPH_IMAGE_ROOT") or None
    return R3Context(**chosen.model_dump(), allow_file_paths=root is not None, image_root=root,
                     allow_remote_images=False, allow_private_image_hosts=False)


def make_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    """Build the served graph: one node that runs R3 as a subgraph with the vetted context."""
    backend = backend_from_env()
    print(f"r3graph server graph: {backend.label}, pack {backend.pack}", file=sys.stderr, flush=True)
    if backend.kind == "engine":
        # Start vLLM now, while the server loads graphs (in a worker thread): the first request does
        # not wait ~30 s, a bad model fails the start, and vLLM's synchronous start-up never runs on
        # the server's event loop (``langgraph dev`` rejects blocking calls there).
        backend.model.start()  # type: ignore[attr-defined]
    r3 = build_r3_graph(backend.model, pack=backend.pack).compile()  # inherits the server's checkpointer

    async def run_r3(state: ServerState, runtime: Runtime[ServerContext]) -> dict[str, Any]:
        # The node's config makes R3 a subgraph of this run: same thread, checkpointer and stream.
        result = await r3.ainvoke({"instruction": state["instruction"], "images": state["images"]}, get_config(),
                                  context=r3_context(runtime.context))
        return {key: result[key] for key in ("output", "rounds", "stop_reason", "usage") if key in result}

    graph = StateGraph(ServerState, context_schema=ServerContext, input_schema=R3Input, output_schema=R3Output)
    graph.add_node("r3", run_r3)
    graph.add_edge(START, "r3")
    graph.add_edge("r3", END)
    return graph.compile(name="r3")


graph = make_graph()
