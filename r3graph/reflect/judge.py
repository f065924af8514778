"""Judge (the paper's recipe): one call that returns ONE concrete edit instruction, or the sentinel
"no further edit needed" (or another phrasing the pack accepts). A JSON verdict through structured
output when the backend supports it; free text, reasoning blocks and loose JSON are read either way
(:mod:`r3graph.reflect.verdicts`). An unreadable verdict asks for no edit and is counted as unclear."""

from __future__ import annotations

from r3graph.reflect.base import ReflectRequest
from r3graph.reflect.readings import read_edit
from r3graph.state import Reflection


class Judge:
    name = "judge"

    async def areflect(self, request: ReflectRequest) -> Reflection:
        if request.previous is not None:
            # A second look with the same prompt would repeat the same greedy verdict: keep it.
            return request.previous
        prompt = request.pack.render("judge", instruction=request.instruction, draft=request.draft)
        result = await request.caller.call("judge", prompt)
        reading = await read_edit(request, "judge", prompt, result.text)
        revise = reading.outcome == "edit"
        return Reflection(
            strategy=self.name,
            verdict="revise" if revise else "pass",
            critique=reading.edit if revise else "",
            score={"pass": 1.0, "edit": 0.0, "unclear": 0.5}[reading.outcome],
            raw=result.text,
            unclear=int(reading.outcome == "unclear"),
        )
