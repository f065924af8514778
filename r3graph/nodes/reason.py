"""Reason: the first draft."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from r3graph.errors import R3ModelError
from r3graph.nodes.common import R3Deps, stage
from r3graph.state import R3State, Round


class ReasonNode:
    def __init__(self, deps: R3Deps) -> None:
        self.deps = deps

    async def __call__(self, state: R3State, runtime: Runtime[Any], config: RunnableConfig) -> dict[str, Any]:
        async with stage("reason", state, runtime, {"r3.round": 0}, max_attempts=self.deps.max_attempts) as (
            context,
            _span,
        ):
            caller = self.deps.caller(state, context, config)
            prompt = caller.pack.render("reason", instruction=state["instruction"])
            result = await caller.call("reason", prompt)
            if not result.text:
                raise R3ModelError("reason: the model returned an empty draft", transient=False, stage="reason")
        get_stream_writer()({"stage": "reason", "round": 0, "text": result.text})
        return {"rounds": [Round(index=0, draft=result.text)], "reflect_pass": 0, "usage": caller.usage}
