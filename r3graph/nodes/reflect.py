"""Reflect: the model checks the current draft against the image with the chosen strategy.

In output mode "image" the roles turn: the model looks at the generated image, and what it checks
against it is the instruction (the prompt), through the pack's image templates.

Runs once per pass; the graph loops back here for iterated reflect (``reflect_passes``)."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from r3graph.nodes.common import R3Deps, stage
from r3graph.reflect import ReflectRequest
from r3graph.state import R3State


class ReflectNode:
    def __init__(self, deps: R3Deps) -> None:
        self.deps = deps

    async def __call__(self, state: R3State, runtime: Runtime[Any], config: RunnableConfig) -> dict[str, Any]:
        rounds = list(state["rounds"])
        current = rounds[-1]
        pass_index = state.get("reflect_pass", 0) + 1
        attributes = {"r3.round": current.index, "r3.reflect.pass": pass_index}
        async with stage("reflect", state, runtime, attributes, max_attempts=self.deps.max_attempts) as (
            context,
            span,
        ):
            strategy = self.deps.strategy_for(context)
            image_mode = context.output == "image"
            caller = self.deps.caller(state, context, config, looking_at=current.image if image_mode else None)
            request = ReflectRequest(
                instruction=state["instruction"],
                draft=state["instruction"] if image_mode else current.draft,
                round=current.index,
                pass_index=pass_index,
                previous=current.reflection if pass_index > 1 else None,
                caller=caller,
                config=config,
            )
            reflection = await strategy.areflect(request)
            reflection = reflection.model_copy(update={"passes": pass_index})
            span.set_attributes(
                {"r3.reflect.strategy": reflection.strategy, "r3.verdict": reflection.verdict,
                 "r3.score": reflection.score, "r3.findings": len(reflection.findings),
                 "r3.unclear": reflection.unclear}
            )
        rounds[-1] = current.model_copy(update={"reflection": reflection})
        get_stream_writer()(
            {"stage": "reflect", "round": current.index, "pass": pass_index, "verdict": reflection.verdict,
             "score": reflection.score, "text": reflection.critique, "unclear": reflection.unclear,
             "findings": [f.model_dump() for f in reflection.findings]}
        )
        return {"rounds": rounds, "reflect_pass": pass_index, "usage": caller.usage}
