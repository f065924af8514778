"""R3 as one node of a bigger graph; the parent decides, per request, how deep the loop goes.

    python examples/r3_as_node.py --priority high            # scripted model (no weights)
    python examples/r3_as_node.py --priority low --engine    # the shipped model, in-process vLLM

The parent graph is ``route -> describe -> report``. ``route`` reads the request (a ``priority`` field,
or words like "quick"/"carefully" in the instruction) and picks ``max_rounds``; ``describe`` runs the
compiled R3 graph with that depth as its ``context``. Calling the subgraph from a node function
(rather than adding it as a node) is what lets each request choose its own R3Context while the
parent keeps its own state. R3's stage events stream through the parent
(``stream_mode="custom", subgraphs=True``), tagged with the subgraph's namespace.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, Literal, NotRequired, TypedDict, cast

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from r3graph import R3Context, build_r3_graph
from r3graph.backends import Backend, BackendKind, make_backend
from r3graph_scenes.assets import EXAMPLE_PNG

Priority = Literal["low", "normal", "high"]
DEPTH: dict[Priority, int] = {"low": 0, "normal": 1, "high": 3}


class Request(TypedDict):
    instruction: str
    images: list[Any]
    priority: NotRequired[Priority]


class ParentState(TypedDict, total=False):
    instruction: str
    images: list[Any]
    priority: Priority
    max_rounds: int
    answer: str
    stop_reason: str
    rounds: int
    model_calls: int


def pick_depth(state: ParentState) -> int:
    """Depth from an explicit priority, else from the wording of the instruction."""
    if "priority" in state:
        return DEPTH[state["priority"]]
    text = state["instruction"].lower()
    if any(word in text for word in ("carefully", "exact", "precise", "every")):
        return DEPTH["high"]
    if any(word in text for word in ("quick", "rough", "glance")):
        return DEPTH["low"]
    return DEPTH["normal"]


def build_parent(backend: Backend) -> CompiledStateGraph[Any, Any, Any, Any]:
    r3 = build_r3_graph(backend.model, pack=backend.pack).compile()

    def route(state: ParentState) -> dict[str, Any]:
        return {"max_rounds": pick_depth(state)}

    async def describe(state: ParentState, config: RunnableConfig) -> dict[str, Any]:
        # Passing the node's config makes this a subgraph run: its events and checkpoints nest under
        # this node, and the parent's stream writer receives its custom events.
        result = await r3.ainvoke({"instruction": state["instruction"], "images": state["images"]}, config,
                                  context=R3Context(max_rounds=state["max_rounds"]))
        return {"answer": result["output"], "stop_reason": result["stop_reason"],
                "rounds": len(result["rounds"]), "model_calls": result["usage"].calls}

    def report(state: ParentState) -> dict[str, Any]:
        return {"answer": state["answer"].strip()}

    parent = StateGraph(ParentState, input_schema=Request)
    parent.add_node("route", route)
    parent.add_node("describe", describe)
    parent.add_node("report", report)
    parent.add_edge(START, "route")
    parent.add_edge("route", "describe")
    parent.add_edge("describe", "report")
    parent.add_edge("report", END)
    return parent.compile()


def describe_event(event: dict[str, Any]) -> str:
    """One line per stage event: stage, round, what it said (a verdict for reflect)."""
    head = f"{event['stage']:<8} round {event.get('round', '?')}"
    if "verdict" in event:
        return f"{head}: verdict {event['verdict']} (score {event.get('score', 0):.2f})"
    item = f"{event['item']} -> " if "item" in event else ""
    return f"{head}: {item}{str(event.get('text', '')).splitlines()[0][:100] if event.get('text') else ''}"


async def run(backend: Backend, request: Request, show: Any = print) -> tuple[list[tuple[str, dict[str, Any]]],
                                                                              dict[str, Any]]:
    """Stream one request; returns the (namespace, event) pairs seen and the parent's final state."""
    app = build_parent(backend)
    events: list[tuple[str, dict[str, Any]]] = []
    final: dict[str, Any] = {}
    async for namespace, mode, chunk in app.astream(request, stream_mode=["custom", "values"], subgraphs=True):
        data = cast(dict[str, Any], chunk)
        if mode == "custom":
            where = "/".join(part.split(":", 1)[0] for part in namespace)  # "describe", without task ids
            events.append((where, data))
            show(f"  [{where}] {describe_event(data)}")
        elif not namespace:
            final = data
    return events, final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruction", default="Describe the image.")
    parser.add_argument("--priority", choices=list(DEPTH), help="default: read from the instruction's wording")
    parser.add_argument("--image", default=str(EXAMPLE_PNG))
    parser.add_argument("--engine", action="store_true", help="the shipped model in an in-process vLLM engine")
    parser.add_argument("--base-url", help="a running vLLM server instead")
    args = parser.parse_args(argv)
    kind: BackendKind = "server" if args.base_url else "engine" if args.engine else "scripted"
    backend = make_backend(kind, base_url=args.base_url)
    print(f"R3 model: {backend.label}")
    request: Request = {"instruction": args.instruction, "images": [args.image]}
    if args.priority:
        request["priority"] = args.priority
    try:
        _, final = asyncio.run(run(backend, request))
    finally:
        if backend.kind == "engine":
            from r3graph.serving import shutdown_engines

            shutdown_engines()
    print(f"depth chosen by the parent: max_rounds={final['max_rounds']}")
    print(f"answer ({final['stop_reason']}, {final['rounds']} round(s), {final['model_calls']} model calls):")
    print(f"  {final['answer']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
