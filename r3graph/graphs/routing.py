"""Where the loop goes next. The round counter lives in the state (not LangGraph's recursion limit).

Routers are async on purpose: LangGraph runs sync ones in a thread pool under ``ainvoke``, which
cost more than the whole rest of a zero-latency run (bench/overhead.py).
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Send

from r3graph.context import resolve_context
from r3graph.nodes.check import check_sends
from r3graph.state import R3State


async def after_reason(state: R3State, runtime: Runtime[Any]) -> Literal["reflect", "finalize"]:
    return "reflect" if resolve_context(runtime.context).max_rounds > 0 else "finalize"


async def after_reflect(
    state: R3State, runtime: Runtime[Any]
) -> Literal["reflect", "review", "refine", "finalize"]:
    context = resolve_context(runtime.context)
    current = state["rounds"][-1]
    reflection = current.reflection
    if reflection is None or reflection.verdict == "pass":
        return "finalize"
    has_failed_checks = any(f.consistent is False for f in reflection.findings)
    if state.get("reflect_pass", 1) < context.reflect_passes and has_failed_checks:
        return "reflect"
    if current.index >= context.max_rounds:
        return "finalize"
    return "review" if context.review else "refine"


async def after_reflect_plan(
    state: R3State, runtime: Runtime[Any]
) -> list[Send] | Literal["reflect", "review", "refine", "finalize"]:
    """A planned reflect fans out to its checks (all at once, or the first of them when checks are
    sequential); a reflect that concluded in its node routes on like any verdict."""
    plan = state.get("checks")
    if plan is None:
        return await after_reflect(state, runtime)
    context = resolve_context(runtime.context)
    return check_sends(state, context, plan, only_next=not context.concurrent_checks)


async def after_reflect_verdict(
    state: R3State, runtime: Runtime[Any]
) -> list[Send] | Literal["reflect", "review", "refine", "finalize"]:
    """Sequential checks come back here after each answer: send the next one until none is left;
    then (and always for concurrent checks) route on the verdict."""
    plan = state.get("checks")
    if plan is not None:
        return check_sends(state, resolve_context(runtime.context), plan, only_next=True)
    return await after_reflect(state, runtime)


async def after_review(state: R3State) -> Literal["refine", "finalize"]:
    reflection = state["rounds"][-1].reflection
    return "finalize" if reflection is not None and reflection.verdict == "pass" else "refine"


async def after_refine(state: R3State, runtime: Runtime[Any]) -> Literal["reflect", "finalize"]:
    context = resolve_context(runtime.context)
    rounds = state["rounds"]
    if rounds[-1].same_artefact(rounds[-2]):
        return "finalize"  # the same text (or image) would get the same verdict: nothing left to learn
    if rounds[-1].index >= context.max_rounds and context.select == "last":
        return "finalize"  # as in the paper, the last refine is not judged: its verdict changes nothing
    return "reflect"
