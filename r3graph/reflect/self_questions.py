"""Self-questions (the seed's recipe): the model writes k yes/no questions about its own draft,
answers each against the image, and any "no" is a finding refine must fix."""

from __future__ import annotations

from r3graph.reflect.base import (
    ReflectRequest,
    conclude_checks,
    plan_recheck,
    reflect_in_one_call,
)
from r3graph.reflect.verdicts import read_items
from r3graph.state import CheckPlan, Reflection


class SelfQuestions:
    name = "self_questions"

    def __init__(self, num_questions: int | None = None) -> None:
        # None: take k from the request's context (num_questions).
        self.num_questions = num_questions

    async def aplan(self, request: ReflectRequest) -> CheckPlan:
        if request.previous is not None:
            return plan_recheck(self.name, request)
        k = self.num_questions or request.context.num_questions
        prompt = request.pack.render("questions", instruction=request.instruction, draft=request.draft, k=k)
        asked = await request.caller.call("questions", prompt)
        return CheckPlan(strategy=self.name, stage="answer", field="question", pass_index=request.pass_index,
                         items=read_items(asked.text, k, questions=True), raw=asked.text)

    async def aconclude(self, request: ReflectRequest, plan: CheckPlan, answers: list[str]) -> Reflection:
        return await conclude_checks(request, plan, answers)

    async def areflect(self, request: ReflectRequest) -> Reflection:
        return await reflect_in_one_call(self, request)
