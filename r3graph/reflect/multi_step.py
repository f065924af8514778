"""Multi-step reasoning: decompose the draft into atomic claims, verify each against the image
(fan-out), then summarise the verified claims into one instruction for refine.

Packs without a ``summarise`` template (tiny models trained without that skill) get the verified
claims themselves as the critique."""

from __future__ import annotations

from r3graph.reflect.base import ReflectRequest, check_items, findings_reflection, recheck_inconsistent
from r3graph.reflect.readings import read_edit
from r3graph.reflect.verdicts import read_items
from r3graph.state import Reflection


class MultiStep:
    name = "multi_step"

    def __init__(self, max_claims: int | None = None) -> None:
        self.max_claims = max_claims

    async def areflect(self, request: ReflectRequest) -> Reflection:
        if request.previous is not None:
            return await recheck_inconsistent(self.name, request)
        limit = self.max_claims or request.context.num_questions
        prompt = request.pack.render("claims", instruction=request.instruction, draft=request.draft)
        listed = await request.caller.call("claims", prompt)
        claims = read_items(listed.text, limit)
        findings = await check_items(request, "verify", "claim", claims)
        reflection = findings_reflection(self.name, request, findings, raw=listed.text)
        if reflection.verdict == "pass" or request.pack.summarise is None:
            return reflection
        prompt = request.pack.render(
            "summarise", instruction=request.instruction, draft=request.draft, findings=reflection.critique
        )
        summary = await request.caller.call("summarise", prompt)
        reading = await read_edit(request, "summarise", prompt, summary.text)
        if reading.outcome != "edit":
            # The summariser overruled a failed check (or said nothing readable); keep the checks'
            # verdict and critique, but say so.
            return reflection.model_copy(update={"raw": f"{listed.text}\n[summary: {summary.text}]"})
        return reflection.model_copy(update={"critique": reading.edit})
