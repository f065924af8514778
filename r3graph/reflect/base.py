"""The reflect protocol, the request every strategy gets, and the shared check fan-out.

A strategy is any object with a ``name`` and ``async areflect(request) -> Reflection``. The
built-in ones generate checks (questions or claims) with one model call and answer them with
:func:`answer_checks`, a small LangGraph graph that fans out with ``Send`` so the checks run
concurrently (or one by one when the context says ``concurrent_checks=False``).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypedDict, runtime_checkable

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from r3graph.calls import CallResult, StageCaller
from r3graph.context import R3Context
from r3graph.prompts import PromptPack
from r3graph.reflect.readings import consistent, read_check, read_checks
from r3graph.state import Finding, Reflection


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


class _ChecksState(TypedDict, total=False):
    stage: str
    field: str
    items: list[str]
    answers: Annotated[list[tuple[int, str]], operator.add]


class _Check(TypedDict):
    stage: str
    field: str
    index: int
    item: str


async def _fan_out(state: _ChecksState) -> list[Send]:
    return [
        Send("check", {"stage": state["stage"], "field": state["field"], "index": i, "item": item})
        for i, item in enumerate(state["items"])
    ]


async def _check(check: _Check, runtime: Runtime[ReflectRequest]) -> dict[str, Any]:
    request = runtime.context
    text = request.pack.render(check["stage"], instruction=request.instruction, **{check["field"]: check["item"]})
    result: CallResult = await request.caller.call(check["stage"], text)
    get_stream_writer()(
        {"stage": check["stage"], "round": request.round, "index": check["index"], "item": check["item"],
         "text": result.text}
    )
    return {"answers": [(check["index"], result.text)]}


def _build_checks_graph() -> Any:
    graph = StateGraph(_ChecksState, context_schema=ReflectRequest)
    graph.add_node("check", _check)  # type: ignore[call-overload]  # Send payload, not the graph state
    graph.add_conditional_edges(START, _fan_out, ["check"])
    graph.add_edge("check", END)
    return graph.compile(name="r3_checks")


CHECKS_GRAPH = _build_checks_graph()


async def answer_checks(request: ReflectRequest, stage: str, field: str, items: list[str]) -> list[str]:
    """Answer every item (question or claim) against the image; answers in item order."""
    if not items:
        return []
    config: RunnableConfig = {**request.config}
    if not request.context.concurrent_checks:
        config["max_concurrency"] = 1
    out = await CHECKS_GRAPH.ainvoke(
        {"stage": stage, "field": field, "items": items, "answers": []}, config, context=request
    )
    by_index = dict(out["answers"])
    return [by_index[i] for i in range(len(items))]


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


async def recheck_inconsistent(strategy: str, request: ReflectRequest) -> Reflection:
    """A later reflect pass: re-check only what the previous pass found inconsistent, as claims.

    A finding stays inconsistent only when the second look agrees; a model that flips its answer
    when asked differently is not confident enough to justify an edit.
    """
    previous = request.previous
    assert previous is not None
    failing = [i for i, f in enumerate(previous.findings) if f.consistent is False]
    answers = await answer_checks(request, "verify", "claim", [previous.findings[i].question for i in failing])
    findings = list(previous.findings)
    for i, answer in zip(failing, answers, strict=True):
        old = findings[i]
        reading = await read_check(request, "verify", "claim", old.question, answer)
        confirmed = consistent(reading)  # an unclear second look leaves the first one standing
        findings[i] = Finding(question=old.question, answer=f"{old.answer} / {reading.text or answer}",
                              consistent=old.consistent if confirmed is None else confirmed)
    return findings_reflection(strategy, request, findings, previous.raw)
