"""A compiled LangGraph graph used as a reflect strategy.

The graph receives ``{"instruction", "draft", "images", "round", "pass_index"}`` (images as data URLs)
and must return a state with ``verdict`` ("pass"/"revise") and ``critique``; ``findings`` (list of
{question, answer, consistent}) and ``score`` are optional. It runs as a subgraph of the reflect
node, so its own streaming and checkpointing work as usual.
"""

from __future__ import annotations

from typing import Any

from r3graph.errors import R3ReflectError
from r3graph.reflect.base import ReflectRequest
from r3graph.state import Reflection


class GraphStrategy:
    def __init__(self, graph: Any, name: str | None = None) -> None:
        self.graph = graph
        self.name = name or getattr(graph, "name", None) or "graph"

    async def areflect(self, request: ReflectRequest) -> Reflection:
        out = await self.graph.ainvoke(
            {
                "instruction": request.instruction,
                "draft": request.draft,
                "images": list(request.caller.image_urls),
                "round": request.round,
                "pass_index": request.pass_index,
            },
            request.config,
        )
        if not isinstance(out, dict) or out.get("verdict") not in ("pass", "revise"):
            raise R3ReflectError(
                f"reflect graph {self.name!r} must return 'verdict' of 'pass' or 'revise', got {out!r:.200}"
            )
        score = out.get("score", 1.0 if out["verdict"] == "pass" else 0.0)
        return Reflection(
            strategy=self.name,
            verdict=out["verdict"],
            critique=str(out.get("critique", "")),
            findings=out.get("findings", []),
            score=score,
            passes=request.pass_index,
        )
