"""Multi-step reasoning: decompose the draft into atomic claims, verify each against the image
(fan-out), then summarise the verified claims into one instruction for refine.

Packs without a ``summarise`` template (tiny models trained without that skill) get the verified
claims themselves as the critique."""

from __future__ import annotations

from r3graph.reflect.base import (
    ReflectRequest,
    conclude_checks,
    plan_recheck,
    reflect_in_one_call,
)
from r3graph.reflect.readings import read_edit
from r3graph.reflect.verdicts import read_items
from r3graph.state import CheckPlan, Reflection


class MultiStep:
    name = "multi_step"

    def __init__(self, max_claims: int | None = None) -> None:
        self.max_claims = max_claims

    async def aplan(self, request: ReflectRequest) -> CheckPlan:
        if request.previous is not None:
            return plan_recheck(self.name, request)
        limit = self.max_claims or request.context.num_questions
        prompt = request.pack.render("claims", instruction=request.instruction, draft=request.draft)
        listed = await request.caller.call("claims", prompt)
        return CheckPlan(strategy=self.name, stage="verify", field="claim", pass_index=request.pass_index,
                         items=read_items(listed.text, limit), raw=listed.text)

    async def aconclude(self, request: ReflectRequest, plan: CheckPlan, answers: list[str]) -> Reflection:
        reflection = await conclude_checks(request, plan, answers)
        if plan.recheck is not None or reflection.verdict == "pass" or request.pack.summarise is None:
            return reflection
        prompt = request.pack.render(
            "summarise", instruction=request.instruction, draft=request.draft, findings=reflection.critique
        )
        summary = await request.caller.call("summarise", prompt)
        reading = await read_edit(request, "summarise", prompt, summary.text)
        if reading.outcome != "edit":
            # The summariser overruled a failed check (or said nothing readable); keep the checks'
            # verdict and critique, but say so.
            return reflection.model_copy(update={"raw": f"{plan.raw}\n[summary: {summary.text}]"})
        return reflection.model_copy(update={"critique": reading.edit})

    async def areflect(self, request: ReflectRequest) -> Reflection:
        return await reflect_in_one_call(self, request)
