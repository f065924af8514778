"""Check: answer one question or claim of a reflect plan against the image.

The reflect node's plan fans out with one ``Send("check", task)`` per item (or one at a time with
``concurrent_checks=False``). Each check is its own task of the R3 graph, so it has its own
RetryPolicy (a failed answer re-asks that check only), its own cache entry, its answer streamed as
it lands, and with a checkpointer its result is kept when a sibling fails: a resumed run answers
only the checks that had not finished.

A ``Send`` hands the node its task, not the graph state, so the task carries what the call needs:
the instruction and item, the images (data URLs; a checkpointer stores them with each pending check)
and the best round so far (for the error a failure raises).
"""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Send

from r3graph.context import R3Context
from r3graph.images import image_data_url
from r3graph.nodes.common import R3Deps, best_round, stage
from r3graph.state import CheckPlan, R3State, Round


class CheckTask(TypedDict):
    run_id: str | None
    deadline: float | None
    round: int
    index: int
    stage: str
    field: str
    item: str
    instruction: str
    images: list[str]
    image_digests: list[str]
    cache_scope: str | None
    # The best round so far, for the error a failed check raises (the run's work travels with it).
    rounds: list[Round]


def check_sends(state: R3State, context: R3Context, plan: CheckPlan, *, only_next: bool) -> list[Send]:
    """One ``Send`` per unanswered item of the plan, or only the first of them (sequential checks)."""
    answered = state.get("check_answers") or {}
    pending = [(i, item) for i, item in enumerate(plan.items) if item not in answered]
    if only_next:
        pending = pending[:1]
    if not pending:
        return []
    current = state["rounds"][-1]
    image_mode = context.output == "image"
    images = [image_data_url(current.image, "PNG")] if image_mode and current.image else list(state.get("images", []))
    best = best_round(state["rounds"], context.select)
    common = {
        "run_id": state.get("run_id"),
        "deadline": state.get("deadline"),
        "round": current.index,
        "stage": plan.stage,
        "field": plan.field,
        "instruction": state["instruction"],
        "images": images,
        "image_digests": list(state.get("image_digests") or []),
        "cache_scope": (state.get("cache_scopes") or {}).get(f"check:{plan.stage}"),
        "rounds": [best] if best is not None else [],
    }
    return [Send("check", {**common, "index": i, "item": item}) for i, item in pending]


class CheckNode:
    def __init__(self, deps: R3Deps) -> None:
        self.deps = deps

    async def __call__(self, task: CheckTask, runtime: Runtime[Any], config: RunnableConfig) -> dict[str, Any]:
        attributes = {"r3.round": task["round"], "r3.check.index": task["index"], "r3.check.stage": task["stage"]}
        view: R3State = {"run_id": task["run_id"] or "", "rounds": task["rounds"], "images": task["images"]}
        if task["deadline"] is not None:
            view["deadline"] = task["deadline"]
        async with stage("check", view, runtime, attributes, max_attempts=self.deps.max_attempts) as (context, _):
            caller = self.deps.caller(view, context, config)
            prompt = caller.pack.render(task["stage"], instruction=task["instruction"], **{task["field"]: task["item"]})
            result = await caller.call(task["stage"], prompt)
        get_stream_writer()(
            {"stage": task["stage"], "round": task["round"], "index": task["index"], "item": task["item"],
             "text": result.text}
        )
        return {"check_answers": {task["item"]: result.text}, "usage": caller.usage}
