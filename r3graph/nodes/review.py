"""Review: an optional human check between reflect and refine (``R3Context(review=True)``).

The node pauses the run with LangGraph's ``interrupt`` (a checkpointer is required), showing the draft
and the reflection. Resume with ``Command(resume=...)``:

- ``True``/``None``/``"approve"``: refine with the reflection as it is;
- a string: refine with this text as the critique instead;
- ``{"critique": "..."}``: the same, as a dict;
- ``{"action": "stop"}`` or ``False``: accept the current draft and stop.
"""

from __future__ import annotations

from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from r3graph.errors import R3InputError
from r3graph.nodes.common import stage
from r3graph.state import R3State, Reflection


def review_payload(state: R3State) -> dict[str, Any]:
    current = state["rounds"][-1]
    reflection = current.reflection
    return {
        "kind": "r3_review",
        "round": current.index,
        "instruction": state["instruction"],
        "draft": current.draft,
        "critique": reflection.critique if reflection else "",
        "findings": [f.model_dump() for f in reflection.findings] if reflection else [],
        "how_to_resume": "True to approve, a string or {'critique': ...} to edit, {'action': 'stop'} to stop",
    }


def apply_decision(reflection: Reflection, decision: Any) -> Reflection:
    if decision is None or decision is True or decision == "approve":
        return reflection.model_copy(update={"reviewed": "approved"})
    if decision is False or (isinstance(decision, dict) and decision.get("action") == "stop"):
        return reflection.model_copy(update={"verdict": "pass", "reviewed": "stopped"})
    if isinstance(decision, dict) and isinstance(decision.get("critique"), str):
        decision = decision["critique"]
    if isinstance(decision, str) and decision.strip():
        return reflection.model_copy(update={"critique": decision.strip(), "reviewed": "edited"})
    raise R3InputError(
        f"cannot resume review with {decision!r:.80}: use True, a critique string, "
        "{'critique': '...'} or {'action': 'stop'}"
    )


async def review(state: R3State, runtime: Runtime[Any]) -> dict[str, Any]:
    rounds = list(state["rounds"])
    current = rounds[-1]
    assert current.reflection is not None
    # No model call here, so no retries: a bad resume value is final.
    async with stage("review", state, runtime, {"r3.round": current.index}, max_attempts=1) as (_, span):
        decision = interrupt(review_payload(state))
        reflection = apply_decision(current.reflection, decision)
        span.set_attribute("r3.review.decision", reflection.reviewed or "")
    rounds[-1] = current.model_copy(update={"reflection": reflection})
    get_stream_writer()({"stage": "review", "round": current.index, "decision": reflection.reviewed,
                         "text": reflection.critique})
    return {"rounds": rounds}
