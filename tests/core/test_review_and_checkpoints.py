"""Human review with interrupt/resume, and resuming a crashed run from a SQLite checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command

from r3graph import R3Context, R3InputError, R3ModelError, build_r3_graph
from r3graph.graphs import default_retry_policy
from tests.core.test_loop import IMAGE, truthful_script
from tests.fakes import ScriptedChatModel, stage_of

INPUTS = {"instruction": "Describe the image.", "images": [IMAGE]}


def echo_refine_script(prompt: str) -> str:
    """Refine copies the critique's last line into the draft, so edits are visible in the output."""
    stage = stage_of(prompt)
    if stage == "refine":
        return "refined: " + prompt.split("found:\n", 1)[1].split("\n\n", 1)[0].strip()
    return truthful_script()(prompt)


async def test_review_pauses_before_refine_and_an_edited_critique_changes_the_output() -> None:
    model = ScriptedChatModel(script=echo_refine_script)
    graph = build_r3_graph(model).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "review-1"}}
    context = R3Context(max_rounds=1, review=True)
    first = await graph.ainvoke(INPUTS, config, context=context)
    (pending,) = first["__interrupt__"]
    assert pending.value["kind"] == "r3_review" and pending.value["draft"] == "a blue square"
    assert "(inconsistent)" in pending.value["critique"]
    assert "refine" not in model.stages()
    resumed = await graph.ainvoke(Command(resume="the square is red, say so"), config, context=context)
    assert resumed["output"] == "refined: the square is red, say so"
    assert resumed["rounds"][0].reflection.reviewed == "edited"


async def test_review_approve_and_stop() -> None:
    for decision, expected_output, reviewed in [
        (True, "refined: - Is the square blue? -> no (inconsistent)", "approved"),
        ({"action": "stop"}, "a blue square", "stopped"),
    ]:
        model = ScriptedChatModel(script=echo_refine_script)
        graph = build_r3_graph(model).compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": f"review-{reviewed}"}}
        context = R3Context(max_rounds=1, review=True)
        await graph.ainvoke(INPUTS, config, context=context)
        result = await graph.ainvoke(Command(resume=decision), config, context=context)
        assert result["output"].startswith(expected_output)
        assert result["rounds"][0].reflection.reviewed == reviewed


async def test_review_rejects_a_meaningless_decision() -> None:
    graph = build_r3_graph(ScriptedChatModel(script=echo_refine_script)).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "review-bad"}}
    context = R3Context(max_rounds=1, review=True)
    await graph.ainvoke(INPUTS, config, context=context)
    with pytest.raises(R3InputError, match="cannot resume review"):
        await graph.ainvoke(Command(resume=12), config, context=context)


async def test_a_run_that_dies_after_reflect_resumes_without_repeating_reason_or_reflect(tmp_path: Path) -> None:
    database = str(tmp_path / "r3.sqlite")
    crash = {"on": True}
    base = truthful_script()

    def crashing(prompt: str) -> str:
        if stage_of(prompt) == "refine" and crash["on"]:
            raise RuntimeError("process died")  # not transient: no retry, the run ends here
        return base(prompt)

    model = ScriptedChatModel(script=crashing)
    config = {"configurable": {"thread_id": "crash-1"}}
    context = R3Context(max_rounds=1)
    async with AsyncSqliteSaver.from_conn_string(database) as saver:
        graph = build_r3_graph(model, retry_policy=default_retry_policy(1)).compile(checkpointer=saver)
        with pytest.raises(R3ModelError) as caught:
            await graph.ainvoke(INPUTS, config, context=context)
        assert caught.value.best_draft == "a blue square"
    calls_before = model.stages()
    assert calls_before == ["reason", "questions", "answer", "answer", "refine"]

    crash["on"] = False
    fresh_model = ScriptedChatModel(script=crashing)  # a new process: new model, new graph, same file
    async with AsyncSqliteSaver.from_conn_string(database) as saver:
        graph = build_r3_graph(fresh_model).compile(checkpointer=saver)
        result = await graph.ainvoke(None, config, context=context)
    assert fresh_model.stages() == ["refine"]  # reason and reflect were not repeated
    assert result["output"] == "a red square"


async def test_a_paused_run_closes_its_span_and_the_resume_opens_a_resumed_one(spans) -> None:  # type: ignore[no-untyped-def]
    from r3graph.tracing import run_spans

    graph = build_r3_graph(ScriptedChatModel(script=echo_refine_script)).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "review-spans"}}
    context = R3Context(max_rounds=1, review=True)
    await graph.ainvoke(INPUTS, config, context=context)
    assert len(run_spans) == 0
    await graph.ainvoke(Command(resume=True), config, context=context)
    runs = [s for s in spans.get_finished_spans() if s.name == "invoke_workflow r3"]
    assert [s.attributes["r3.resumed"] for s in runs] == [False, True]
    assert runs[0].attributes["r3.interrupted_at"] == "review"
    assert runs[1].attributes["r3.stop_reason"] == "max_rounds"
    assert len(run_spans) == 0
