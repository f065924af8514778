"""The loop's shape: depth per request, early stop, selection, stop reasons, streaming, subgraphs."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from r3graph import R3Context, build_r3_graph
from tests.fakes import ScriptedChatModel, png_bytes, stage_of

IMAGE = png_bytes("red")


def truthful_script(refined: list[str] | None = None, answers_yes: tuple[str, ...] = ("red",)) -> Any:
    """Reason says 'a blue square'; questions check colour; answers say yes only to `answers_yes` words.
    Refine returns successive texts from `refined`."""
    outputs = iter(refined or ["a red square", "a red square.", "a red square!"])

    def script(prompt: str) -> str:
        stage = stage_of(prompt)
        if stage == "reason":
            return "a blue square"
        if stage == "questions":
            draft = prompt.split("Draft answer: ", 1)[1].split("\n", 1)[0]
            colour = "red" if "red" in draft else "blue"
            return f"1. Is the square {colour}?\n2. Is there a square?"
        if stage in ("answer", "verify"):
            question = prompt.rsplit("\n", 1)[-1]
            return "yes" if any(w in question for w in answers_yes) or "there a square" in question else "no"
        if stage in ("refine", "refine_blind"):
            return next(outputs)
        if stage == "judge":
            draft = prompt.split("Draft answer: ", 1)[1].split("\n", 1)[0]
            return "no further edit needed" if "red" in draft else '{"edit": "change the blue square to red"}'
        raise AssertionError(f"unexpected stage {stage}")

    return script


async def run(model: ScriptedChatModel, **context: Any) -> dict[str, Any]:
    graph = build_r3_graph(model).compile()
    return await graph.ainvoke({"instruction": "Describe the image.", "images": [IMAGE]}, context=R3Context(**context))


async def test_depth_zero_is_one_shot() -> None:
    model = ScriptedChatModel(script=truthful_script())
    result = await run(model, max_rounds=0)
    assert model.stages() == ["reason"]
    assert result["output"] == "a blue square"
    assert result["stop_reason"] == "one_shot"
    assert len(result["rounds"]) == 1 and result["rounds"][0].reflection is None


async def test_depth_one_reflects_then_refines_once() -> None:
    model = ScriptedChatModel(script=truthful_script())
    result = await run(model, max_rounds=1)
    assert model.stages() == ["reason", "questions", "answer", "answer", "refine"]
    assert result["output"] == "a red square"
    assert result["stop_reason"] == "max_rounds"
    first = result["rounds"][0]
    assert first.verdict == "revise"
    assert [f.consistent for f in first.reflection.findings] == [False, True]
    assert result["usage"].calls == 5


async def test_early_stop_when_the_verdict_passes() -> None:
    model = ScriptedChatModel(script=truthful_script())
    result = await run(model, max_rounds=3)
    # round 0 fails, refine fixes it, round 1 passes: no more rounds although 3 were allowed
    assert model.stages() == ["reason", "questions", "answer", "answer", "refine", "questions", "answer", "answer"]
    assert result["stop_reason"] == "passed"
    assert [r.verdict for r in result["rounds"]] == ["revise", "pass"]


async def test_depth_three_runs_three_refines_when_never_passing() -> None:
    model = ScriptedChatModel(script=truthful_script(["a green square", "a pink square", "a grey square"]))
    result = await run(model, max_rounds=3)
    assert model.stages().count("refine") == 3
    assert model.stages().count("questions") == 3  # the last refine is not judged with select=last
    assert result["output"] == "a grey square"
    assert result["stop_reason"] == "max_rounds"
    assert [r.index for r in result["rounds"]] == [0, 1, 2, 3]


async def test_select_best_keeps_a_better_earlier_round() -> None:
    # Refine first fixes the colour, then breaks it again; 'best' must return the fixed draft.
    script = truthful_script(["a red square", "a blue square again"])

    def only_red_is_right(prompt: str) -> str:
        stage = stage_of(prompt)
        if stage == "judge":
            raise AssertionError
        if stage == "questions":
            draft = prompt.split("Draft answer: ", 1)[1].split("\n", 1)[0]
            return f"Is the square {'red' if 'red' in draft else 'blue'}?\nIs the square small?"
        return script(prompt)

    model = ScriptedChatModel(script=only_red_is_right)
    best = await run(model, max_rounds=2, select="best")
    assert [r.reflection.score for r in best["rounds"]] == [0.0, 0.5, 0.0]
    assert best["output"] == "a red square"
    model_last = ScriptedChatModel(script=truthful_script(["a red square", "a blue square again"]))
    last = await run(model_last, max_rounds=2, select="last", reflect="judge")
    assert last["output"] == "a red square"  # judge passed round 1 already


async def test_unchanged_refine_stops_the_loop() -> None:
    model = ScriptedChatModel(script=truthful_script(["a blue square", "never used"]))
    result = await run(model, max_rounds=3)
    assert result["stop_reason"] == "unchanged"
    assert model.stages().count("refine") == 1


async def test_stream_events_arrive_in_stage_order() -> None:
    model = ScriptedChatModel(script=truthful_script())
    graph = build_r3_graph(model).compile()
    events = [
        event
        async for event in graph.astream(
            {"instruction": "Describe the image.", "images": [IMAGE]},
            context=R3Context(max_rounds=2),
            stream_mode="custom",
        )
    ]
    # Each check's answer arrives as it lands (the checks are nodes of this graph), before its verdict.
    assert [(e["stage"], e["round"]) for e in events] == [
        ("reason", 0), ("answer", 0), ("answer", 0), ("reflect", 0), ("refine", 1),
        ("answer", 1), ("answer", 1), ("reflect", 1), ("final", 1)
    ]
    assert sorted(e["index"] for e in events[1:3]) == [0, 1]
    assert events[3]["verdict"] == "revise" and events[7]["verdict"] == "pass"
    assert events[-1]["text"] == "a red square"


async def test_runs_as_a_subgraph_of_a_parent_graph_with_streaming() -> None:
    class Parent(TypedDict, total=False):
        instruction: str
        images: list[Any]
        output: str
        verdicts: list[str]

    r3 = build_r3_graph(ScriptedChatModel(script=truthful_script())).compile()

    async def summarise(state: Parent) -> dict[str, Any]:
        return {"output": state["output"].upper()}

    parent = StateGraph(Parent, context_schema=R3Context)
    parent.add_node("r3", r3)
    parent.add_node("summarise", summarise)
    parent.add_edge(START, "r3")
    parent.add_edge("r3", "summarise")
    parent.add_edge("summarise", END)
    app = parent.compile()
    seen = []
    async for namespace, mode, chunk in app.astream(
        {"instruction": "Describe the image.", "images": [IMAGE]},
        context=R3Context(max_rounds=1),
        stream_mode=["custom", "updates"],
        subgraphs=True,
    ):
        if mode == "custom":
            assert namespace and namespace[0].startswith("r3:")
            seen.append((len(namespace), chunk["stage"]))
        elif namespace == () and "summarise" in chunk:
            final = chunk["summarise"]["output"]
    # The R3 stages at depth 1, each question's answer among them, live, before the verdict.
    assert [stage for _, stage in seen] == ["reason", "answer", "answer", "reflect", "refine", "final"]
    assert {depth for depth, _ in seen} == {1}
    assert final == "A RED SQUARE"


async def test_sampling_settings_reach_the_model_per_stage() -> None:
    model = ScriptedChatModel(script=truthful_script())
    await run(model, max_rounds=1, sampling={"reason": {"temperature": 0.7, "max_tokens": 42}})
    reason_kwargs = model.calls[0]["kwargs"]
    assert reason_kwargs["temperature"] == 0.7 and reason_kwargs["max_tokens"] == 42
    answer_kwargs = model.calls[2]["kwargs"]
    assert answer_kwargs["temperature"] == 0.0 and answer_kwargs["max_tokens"] == 128  # the default pack's budget


async def test_every_stage_puts_the_shared_prefix_first() -> None:
    model = ScriptedChatModel(script=truthful_script())
    await run(model, max_rounds=1)
    layouts = []
    for call in model.calls:
        system, human = call["messages"]
        parts = human.content
        assert parts[0]["type"] == "image_url" and parts[-1]["type"] == "text"
        layouts.append((system.content, parts[0]["image_url"]["url"]))
    assert len(set(layouts)) == 1  # byte-identical system text and image in every stage


@pytest.mark.parametrize("passes,expected_verifies", [(1, 0), (2, 1)])
async def test_iterated_reflect_rechecks_only_failed_findings(passes: int, expected_verifies: int) -> None:
    model = ScriptedChatModel(script=truthful_script())
    result = await run(model, max_rounds=1, reflect_passes=passes)
    assert model.stages().count("verify") == expected_verifies
    assert result["rounds"][0].reflection.passes == passes
