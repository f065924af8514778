"""Judge (the paper's recipe): one call that returns ONE concrete edit instruction, or the sentinel
"no further edit needed". Structured output (a JSON verdict) when the backend supports it; free
text is tolerated either way."""

from __future__ import annotations

from r3graph.reflect.base import ReflectRequest
from r3graph.reflect.parsing import JudgeVerdict, parse_judge_text
from r3graph.state import Reflection


class Judge:
    name = "judge"

    async def areflect(self, request: ReflectRequest) -> Reflection:
        if request.previous is not None:
            # A second look with the same prompt would repeat the same greedy verdict: keep it.
            return request.previous
        prompt = request.pack.render("judge", instruction=request.instruction, draft=request.draft)
        result = await request.caller.call_structured("judge", prompt, JudgeVerdict)
        edit = result.parsed.edit.strip() if result.parsed is not None else parse_judge_text(result.text)
        passed = request.pack.is_sentinel(edit) or not edit
        return Reflection(
            strategy=self.name,
            verdict="pass" if passed else "revise",
            critique="" if passed else edit,
            score=1.0 if passed else 0.0,
            raw=result.text,
        )
