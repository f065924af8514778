"""Self-questions (the seed's recipe): the model writes k yes/no questions about its own draft,
answers each against the image, and any "no" is a finding refine must fix."""

from __future__ import annotations

from r3graph.reflect.base import ReflectRequest, check_items, findings_reflection, recheck_inconsistent
from r3graph.reflect.verdicts import read_items
from r3graph.state import Reflection


class SelfQuestions:
    name = "self_questions"

    def __init__(self, num_questions: int | None = None) -> None:
        # None: take k from the request's context (num_questions).
        self.num_questions = num_questions

    async def areflect(self, request: ReflectRequest) -> Reflection:
        if request.previous is not None:
            return await recheck_inconsistent(self.name, request)
        k = self.num_questions or request.context.num_questions
        prompt = request.pack.render("questions", instruction=request.instruction, draft=request.draft, k=k)
        asked = await request.caller.call("questions", prompt)
        questions = read_items(asked.text, k, questions=True)
        findings = await check_items(request, "answer", "question", questions)
        return findings_reflection(self.name, request, findings, raw=asked.text)
