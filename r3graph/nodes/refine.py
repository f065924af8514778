"""Refine: rewrite the draft conditioned on what reflect found (or, for the "none" ablation,
on the draft alone).

In output mode "image" refine edits the image: with the judge's edit instruction as it stands, or
with one instruction the model writes from the findings (the pack's image "refine" template). With
no critique at all (the "none" ablation) it generates again, a new sample of the same prompt."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from r3graph.context import R3Context
from r3graph.errors import R3ModelError
from r3graph.nodes.common import R3Deps, image_event, stage
from r3graph.reflect.verdicts import read_judge
from r3graph.state import R3State, ReflectionUpdate, Round, Usage


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
            if context.output == "image":
                refined, usage = await self._edit_image(state, context, config, previous)
            else:
                refined, usage = await self._rewrite(state, context, config, previous)
        get_stream_writer()({"stage": "refine", "round": index, "text": refined.draft, **image_event(refined)})
        return {"rounds": ReflectionUpdate(append=refined), "reflect_pass": 0, "usage": usage}

    async def _rewrite(
        self, state: R3State, context: R3Context, config: RunnableConfig, previous: Round
    ) -> tuple[Round, Usage]:
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
        return Round(index=previous.index + 1, draft=result.text), caller.usage

    async def _edit_image(
        self, state: R3State, context: R3Context, config: RunnableConfig, previous: Round
    ) -> tuple[Round, Usage]:
        assert previous.image is not None
        index = previous.index + 1
        images = self.deps.image_caller(state, context)
        reflection = previous.reflection
        critique = reflection.critique if reflection else ""
        if not critique:
            png = await images.generate("refine", state["instruction"], sample=index)  # a new sample
            return Round(index=index, draft=state["instruction"], image=png), images.usage
        usage = Usage()
        instruction = critique
        if reflection is not None and reflection.findings:
            # Checks, not an edit: the model turns what failed into one edit, looking at the image.
            caller = self.deps.caller(state, context, config, looking_at=previous.image)
            prompt = caller.pack.render("refine", instruction=state["instruction"], draft=state["instruction"],
                                        findings=critique)
            written = (await caller.call("refine", prompt)).text
            usage = caller.usage
            reading = read_judge(written, caller.pack.accepted_passes)
            if reading.outcome != "edit":
                # No edit to make (or none that can be read): keep the image; the loop ends as "unchanged".
                return Round(index=index, draft=written, image=previous.image), usage
            instruction = reading.edit
        png = await images.edit("refine", previous.image, instruction)
        return Round(index=index, draft=instruction, image=png), usage + images.usage
