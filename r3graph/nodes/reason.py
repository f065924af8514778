"""Reason: the first draft. In output mode "image": an optional plan (a detailed generation prompt),
then the first image."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from r3graph.calls import StageCaller
from r3graph.context import R3Context
from r3graph.errors import R3ModelError
from r3graph.nodes.common import R3Deps, image_event, stage
from r3graph.state import R3State, Round, Usage


def _empty(what: str, reasoning: str) -> str:
    if reasoning:
        return (f"reason: the model returned reasoning but no {what} (cut while thinking?); raise the pack's "
                "max_tokens or turn thinking off with chat_template_kwargs={'enable_thinking': False}")
    return f"reason: the model returned an empty {what}"


class ReasonNode:
    def __init__(self, deps: R3Deps) -> None:
        self.deps = deps

    async def __call__(self, state: R3State, runtime: Runtime[Any], config: RunnableConfig) -> dict[str, Any]:
        async with stage("reason", state, runtime, {"r3.round": 0}, max_attempts=self.deps.max_attempts) as (
            context,
            _span,
        ):
            caller = self.deps.caller(state, context, config)
            if context.output == "image":
                first, usage = await self._generate(state, context, caller)
            else:
                prompt = caller.pack.render("reason", instruction=state["instruction"])
                result = await caller.call("reason", prompt)
                if not result.text:
                    raise R3ModelError(_empty("draft", result.reasoning), transient=False, stage="reason")
                first, usage = Round(index=0, draft=result.text), caller.usage
        get_stream_writer()({"stage": "reason", "round": 0, "text": first.draft, **image_event(first)})
        return {"rounds": [first], "reflect_pass": 0, "usage": usage}

    async def _generate(self, state: R3State, context: R3Context, caller: StageCaller) -> tuple[Round, Usage]:
        prompt = state["instruction"]
        if context.image.plan:
            planned = await caller.call("reason", caller.pack.render("reason", instruction=prompt))
            if not planned.text:
                raise R3ModelError(_empty("plan", planned.reasoning), transient=False, stage="reason")
            prompt = planned.text
        images = self.deps.image_caller(state, context)
        png = await images.generate("reason", prompt)
        return Round(index=0, draft=prompt, image=png), caller.usage + images.usage
