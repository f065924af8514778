"""Finalize: pick the answer (last or best-judged round), say why the loop stopped, end the run span."""

from __future__ import annotations

from typing import Any

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from r3graph.context import resolve_context
from r3graph.nodes.common import best_round
from r3graph.state import R3State, StopReason
from r3graph.tracing import run_spans


def stop_reason(state: R3State, max_rounds: int) -> StopReason:
    rounds = state.get("rounds", [])
    last = rounds[-1]
    if max_rounds == 0:
        return "one_shot"
    if last.verdict == "pass":
        reflection = last.reflection
        assert reflection is not None
        if reflection.unclear and not any(f.consistent for f in reflection.findings):
            return "unverified"  # nothing was read as holding: do not call that a pass
        return "passed"
    if len(rounds) >= 2 and last.reflection is None and last.same_artefact(rounds[-2]):
        return "unchanged"
    return "max_rounds"


async def finalize(state: R3State, runtime: Runtime[Any]) -> dict[str, Any]:
    context = resolve_context(runtime.context)
    rounds = state["rounds"]
    chosen = best_round(rounds, context.select)
    assert chosen is not None
    reason = stop_reason(state, context.max_rounds)
    usage = state.get("usage")
    run_spans.end(
        state.get("run_id"),
        {
            "r3.stop_reason": reason,
            "r3.rounds": len(rounds),
            "r3.selected_round": chosen.index,
            "r3.model_calls": usage.calls if usage else 0,
        },
    )
    get_stream_writer()({"stage": "final", "round": chosen.index, "text": chosen.draft, "stop_reason": reason})
    update: dict[str, Any] = {"output": chosen.draft, "selected_round": chosen.index, "stop_reason": reason}
    if chosen.image is not None:
        update["image"] = chosen.image
    return update
