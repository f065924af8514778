"""Refine: rewrite the draft conditioned on what reflect found (or, for the "none" ablation,
on the draft alone)."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from r3graph.errors import R3ModelError
from r3graph.nodes.common import R3Deps, stage
from r3graph.state import R3State, Round


class RefineNode:
    def __init__(self, deps: R3Deps) -> None:
        self.deps = deps

    async def __call__(self, state: R3State, runtime: Runtime[Any], config: RunnableConfig) -> dict[str, Any]:
        rounds = list(state["rounds"])
        previous = rounds[-1]
        index = previous.index + 1
        async with stage("refine", state, runtime, {"r3.round": index}, max_attempts=self.deps.max_attempts) as (
            context,
            _span,
        ):
            caller = self.deps.caller(state, context, config)
            critique = previous.reflection.critique if previous.reflection else ""
            if critique:
                prompt = caller.pack.render(
                    "refine", instruction=state["instruction"], draft=previous.draft, findings=critique
                )
                result = await caller.call("refine", prompt)
            else:
                prompt = caller.pack.render("refine_blind", instruction=state["instruction"], draft=previous.draft)
                result = await caller.call("refine_blind", prompt)
            if not result.text:  # an empty rewrite must not replace the draft (the error carries it)
                raise R3ModelError("refine: the model returned an empty draft", transient=False, stage="refine")
        rounds.append(Round(index=index, draft=result.text))
        get_stream_writer()({"stage": "refine", "round": index, "text": result.text})
        return {"rounds": rounds, "reflect_pass": 0, "usage": caller.usage}
