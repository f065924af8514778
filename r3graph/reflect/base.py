"""The reflect protocol, the request every strategy gets, and the two-phase check protocol.

A strategy is any object with a ``name`` and ``async areflect(request) -> Reflection``; the graph
runs it inside its reflect node. The built-in checking strategies (self-questions, multi-step) also
speak a two-phase protocol, :class:`CheckingStrategy`: ``aplan`` writes the checks (one model call),
the R3 graph answers each in its own ``check`` node (one ``Send`` per check, each with its own
RetryPolicy, cache entry and checkpointed result), and ``aconclude`` turns the answers into the
verdict. Their ``areflect`` runs both phases in one call for use outside the graph.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from langchain_core.runnables import RunnableConfig

from r3graph.calls import StageCaller
from r3graph.context import R3Context
from r3graph.prompts import PromptPack
from r3graph.reflect.readings import consistent, read_check, read_checks
from r3graph.state import CheckPlan, Finding, Reflection


@dataclass
class ReflectRequest:
    """Everything a strategy may use. ``caller`` makes traced model calls with the run's images."""

    instruction: str
    draft: str
    round: int
    pass_index: int
    previous: Reflection | None
    caller: StageCaller
    config: RunnableConfig

    @property
    def context(self) -> R3Context:
        return self.caller.context

    @property
    def pack(self) -> PromptPack:
        return self.caller.pack


@runtime_checkable
class ReflectStrategy(Protocol):
    name: str

    async def areflect(self, request: ReflectRequest) -> Reflection: ...


@runtime_checkable
class CheckingStrategy(Protocol):
    """A strategy whose checks the graph answers as nodes of its own.

    ``aplan`` returns the checks to answer, or a finished :class:`Reflection` when there is nothing
    to check; ``aconclude`` gets the answers in item order. Both must be deterministic functions of
    the request (and the answers), so a resumed or cached run reaches the same verdict.
    """

    name: str

    async def aplan(self, request: ReflectRequest) -> CheckPlan | Reflection: ...

    async def aconclude(self, request: ReflectRequest, plan: CheckPlan, answers: list[str]) -> Reflection: ...


async def answer_checks(request: ReflectRequest, stage: str, field: str, items: list[str]) -> list[str]:
    """Answer every item (question or claim) against the image, in one coroutine; answers in item
    order. Inside the R3 graph the checks are nodes instead (see :class:`CheckingStrategy`); this is
    for strategies that run whole in the reflect node, and for ``areflect`` outside a graph."""

    async def answer(item: str) -> str:
        text = request.pack.render(stage, instruction=request.instruction, **{field: item})
        return (await request.caller.call(stage, text)).text

    if request.context.concurrent_checks:
        return list(await asyncio.gather(*(answer(item) for item in items)))
    return [await answer(item) for item in items]


async def reflect_in_one_call(strategy: CheckingStrategy, request: ReflectRequest) -> Reflection:
    """Both phases of a checking strategy in one coroutine (its ``areflect``)."""
    plan = await strategy.aplan(request)
    if isinstance(plan, Reflection):
        return plan
    answers = await answer_checks(request, plan.stage, plan.field, plan.items)
    return await strategy.aconclude(request, plan, answers)


async def check_items(request: ReflectRequest, stage: str, field: str, items: list[str]) -> list[Finding]:
    """Answer each question/claim against the image; a "yes" means the draft's statement holds."""
    answers = await answer_checks(request, stage, field, items)
    return await read_checks(request, stage, field, items, answers)


def findings_reflection(strategy: str, request: ReflectRequest, findings: list[Finding], raw: str | None) -> Reflection:
    """Verdict, score and critique from checked findings: revise when a check failed. Unclear
    checks are left out (not failures); no checks at all (an unreadable list) counts as unclear."""
    checked = [f for f in findings if f.consistent is not None]
    agree = sum(1 for f in checked if f.consistent)
    score = agree / len(checked) if checked else 0.5
    passed = agree == len(checked)
    unclear = len(findings) - len(checked) if findings else 1
    critique = request.pack.render_findings([(f.question, f.answer, f.consistent) for f in findings])
    return Reflection(
        strategy=strategy,
        verdict="pass" if passed else "revise",
        critique=critique,
        findings=findings,
        score=score,
        passes=request.pass_index,
        raw=raw,
        unclear=unclear,
    )


def plan_recheck(strategy: str, request: ReflectRequest) -> CheckPlan:
    """A later reflect pass: re-check only what the previous pass found inconsistent, as claims."""
    previous = request.previous
    assert previous is not None
    failing = [i for i, f in enumerate(previous.findings) if f.consistent is False]
    return CheckPlan(strategy=strategy, stage="verify", field="claim", pass_index=request.pass_index,
                     items=[previous.findings[i].question for i in failing], raw=previous.raw, recheck=failing)


async def conclude_recheck(request: ReflectRequest, plan: CheckPlan, answers: list[str]) -> Reflection:
    """A finding stays inconsistent only when the second look agrees; a model that flips its answer
    when asked differently is not confident enough to justify an edit."""
    previous = request.previous
    assert previous is not None and plan.recheck is not None
    findings = list(previous.findings)
    for i, answer in zip(plan.recheck, answers, strict=True):
        old = findings[i]
        reading = await read_check(request, "verify", "claim", old.question, answer)
        confirmed = consistent(reading)  # an unclear second look leaves the first one standing
        findings[i] = Finding(question=old.question, answer=f"{old.answer} / {reading.text or answer}",
                              consistent=old.consistent if confirmed is None else confirmed)
    return findings_reflection(plan.strategy, request, findings, previous.raw)


async def conclude_checks(request: ReflectRequest, plan: CheckPlan, answers: list[str]) -> Reflection:
    """The verdict of a plan's answers: every check must agree (a re-check pass keeps what the
    previous pass confirmed). Unclear answers are re-asked here when the pack/context says so."""
    if plan.recheck is not None:
        return await conclude_recheck(request, plan, answers)
    findings = await read_checks(request, plan.stage, plan.field, plan.items, answers)
    return findings_reflection(plan.strategy, request, findings, raw=plan.raw)


async def recheck_inconsistent(strategy: str, request: ReflectRequest) -> Reflection:
    """Both phases of a re-check pass in one coroutine."""
    plan = plan_recheck(strategy, request)
    answers = await answer_checks(request, plan.stage, plan.field, plan.items)
    return await conclude_recheck(request, plan, answers)
