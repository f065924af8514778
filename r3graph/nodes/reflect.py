"""Reflect: the model checks the current draft against the image with the chosen strategy.

A checking strategy (self-questions, multi-step) runs in three steps of the graph: this node plans
the checks (one model call), the ``check`` node answers each (one ``Send`` per check, see
nodes/check.py), and :class:`ReflectVerdictNode` concludes from the answers. Any other strategy (the
judge, a custom object, a compiled graph) runs whole in this node.

In output mode "image" the roles turn: the model looks at the generated image, and what it checks
against it is the instruction (the prompt), through the pack's image templates.

Runs once per pass; the graph loops back here for iterated reflect (``reflect_passes``)."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from opentelemetry.trace import Span

from r3graph.context import R3Context
from r3graph.nodes.common import R3Deps, stage
from r3graph.reflect import CheckingStrategy, ReflectRequest
from r3graph.state import CheckPlan, R3State, Reflection, ReflectionUpdate


def reflect_request(deps: R3Deps, state: R3State, context: R3Context, config: RunnableConfig,
                    pass_index: int) -> ReflectRequest:
    current = state["rounds"][-1]
    image_mode = context.output == "image"
    return ReflectRequest(
        instruction=state["instruction"],
        draft=state["instruction"] if image_mode else current.draft,
        round=current.index,
        pass_index=pass_index,
        previous=current.reflection if pass_index > 1 else None,
        caller=deps.caller(state, context, config, looking_at=current.image if image_mode else None),
        config=config,
    )


def concluded(request: ReflectRequest, reflection: Reflection, span: Span) -> dict[str, Any]:
    """The state update and stream event for a finished reflection."""
    reflection = reflection.model_copy(update={"passes": request.pass_index})
    span.set_attributes(
        {"r3.reflect.strategy": reflection.strategy, "r3.verdict": reflection.verdict,
         "r3.score": reflection.score, "r3.findings": len(reflection.findings), "r3.unclear": reflection.unclear}
    )
    get_stream_writer()(
        {"stage": "reflect", "round": request.round, "pass": request.pass_index, "verdict": reflection.verdict,
         "score": reflection.score, "text": reflection.critique, "unclear": reflection.unclear,
         "findings": [f.model_dump() for f in reflection.findings]}
    )
    return {"rounds": ReflectionUpdate(reflection=reflection), "reflect_pass": request.pass_index,
            "checks": None, "usage": request.caller.usage}


class ReflectNode:
    def __init__(self, deps: R3Deps) -> None:
        self.deps = deps

    async def __call__(self, state: R3State, runtime: Runtime[Any], config: RunnableConfig) -> dict[str, Any]:
        current = state["rounds"][-1]
        pass_index = state.get("reflect_pass", 0) + 1
        attributes = {"r3.round": current.index, "r3.reflect.pass": pass_index}
        async with stage("reflect", state, runtime, attributes, max_attempts=self.deps.max_attempts) as (
            context,
            span,
        ):
            strategy = self.deps.strategy_for(context)
            request = reflect_request(self.deps, state, context, config, pass_index)
            if not isinstance(strategy, CheckingStrategy):
                return concluded(request, await strategy.areflect(request), span)
            plan = await strategy.aplan(request)
            if isinstance(plan, Reflection):
                return concluded(request, plan, span)
            if not plan.items:  # nothing to send: conclude here (the verdict of no checks)
                return concluded(request, await strategy.aconclude(request, plan, []), span)
            span.set_attribute("r3.checks", len(plan.items))
        # The check answers of an earlier pass are cleared (None) before this plan's arrive.
        return {"checks": plan, "check_answers": None, "usage": request.caller.usage}


class ReflectVerdictNode:
    """The verdict of a checking strategy from its plan's answers (and, for multi-step, a summary)."""

    def __init__(self, deps: R3Deps) -> None:
        self.deps = deps

    async def __call__(self, state: R3State, runtime: Runtime[Any], config: RunnableConfig) -> dict[str, Any]:
        plan: CheckPlan | None = state.get("checks")
        assert plan is not None, "reflect_verdict runs only after a plan's checks"
        answers = state.get("check_answers") or {}
        if any(item not in answers for item in plan.items):
            return {}  # sequential checks: the router sends the next one
        current = state["rounds"][-1]
        attributes = {"r3.round": current.index, "r3.reflect.pass": plan.pass_index}
        async with stage("reflect_verdict", state, runtime, attributes, max_attempts=self.deps.max_attempts) as (
            context,
            span,
        ):
            strategy = self.deps.strategy_for(context)
            assert isinstance(strategy, CheckingStrategy)
            request = reflect_request(self.deps, state, context, config, plan.pass_index)
            reflection = await strategy.aconclude(request, plan, [answers[item] for item in plan.items])
            return concluded(request, reflection, span)
