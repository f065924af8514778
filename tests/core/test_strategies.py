"""Each reflect strategy's message flow, structured verdicts, user strategies and fan-out concurrency."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from r3graph import R3Context, Reflection, ReflectRequest, build_r3_graph
from r3graph.reflect.verdicts import JudgeReading, JudgeVerdict, read_items, read_judge
from tests.core.test_loop import IMAGE, run, truthful_script
from tests.fakes import ScriptedChatModel, stage_of


async def test_judge_flow_edit_then_sentinel() -> None:
    model = ScriptedChatModel(script=truthful_script())
    result = await run(model, max_rounds=3, reflect="judge")
    assert model.stages() == ["reason", "judge", "refine", "judge"]
    first, second = result["rounds"]
    assert first.reflection.critique == "change the blue square to red"
    assert "change the blue square to red" in model.calls[2]["prompt"]  # refine sees the edit
    assert second.verdict == "pass" and result["stop_reason"] == "passed"


async def test_multi_step_flow_claims_verify_summarise() -> None:
    def script(prompt: str) -> str:
        stage = stage_of(prompt)
        return {
            "reason": "a blue square on the left",
            "claims": "- the square is blue\n- the square is on the left\n- the square is blue",
            "verify": "no" if "blue" in prompt.rsplit("\n", 1)[-1] else "yes",
            "summarise": "change the colour of the square to red",
            "refine": "a red square on the left",
        }[stage]

    model = ScriptedChatModel(script=script)
    result = await run(model, max_rounds=1, reflect="multi_step")
    assert model.stages() == ["reason", "claims", "verify", "verify", "summarise", "refine"]
    reflection = result["rounds"][0].reflection
    assert [f.question for f in reflection.findings] == ["the square is blue", "the square is on the left"]
    assert [f.consistent for f in reflection.findings] == [False, True]
    assert reflection.critique == "change the colour of the square to red"
    assert "(inconsistent)" in model.calls[4]["prompt"]  # summarise sees the checks
    assert result["output"] == "a red square on the left"


async def test_none_strategy_is_refine_without_findings() -> None:
    model = ScriptedChatModel(script=truthful_script())
    result = await run(model, max_rounds=1, reflect="none")
    assert model.stages() == ["reason", "refine_blind"]
    assert result["output"] == "a red square"


class StructuredScripted(ScriptedChatModel):
    """A model that takes response_format, as ChatOpenAI and ChatVLLMEngine do."""

    supports_response_format: bool = True

    @property
    def structured_calls(self) -> int:
        return sum(1 for c in self.calls if "response_format" in c["kwargs"])


async def test_judge_uses_structured_output_when_the_model_supports_it() -> None:
    replies = iter(['{"edit": "make the square red"}', '{"edit": "no further edit needed"}'])

    def script(prompt: str) -> str:
        stage = stage_of(prompt)
        return {"reason": "a blue square", "refine": "a red square"}.get(stage) or next(replies)

    model = StructuredScripted(script=script)
    result = await run(model, max_rounds=2, reflect="judge")
    assert model.structured_calls == 2
    judge_kwargs = next(c["kwargs"] for c in model.calls if "response_format" in c["kwargs"])
    assert judge_kwargs["response_format"]["json_schema"]["schema"] == JudgeVerdict.model_json_schema()
    assert judge_kwargs["temperature"] == 0.0  # sampling travels beside it
    assert result["rounds"][0].reflection.critique == "make the square red"
    assert result["stop_reason"] == "passed"
    off = StructuredScripted(script=truthful_script())
    await run(off, max_rounds=1, reflect="judge", structured_judge=False)
    assert off.structured_calls == 0


async def test_a_pack_for_a_model_trained_on_exact_json_turns_constrained_decoding_off() -> None:
    """scenes-vlm writes the judge's JSON token by token as trained; a JSON grammar forbade its
    tokens and it wrote '{"edit":"} the green circle "}' through vLLM (measured). The pack says so."""
    from r3graph.prompts import load_pack

    scenes = load_pack("scenes")
    assert scenes.constrained_json is False and load_pack("default").constrained_json is True
    model = StructuredScripted(script=lambda prompt: '{"edit": "no further edit needed"}')
    graph = build_r3_graph(model, pack="scenes").compile()
    inputs = {"instruction": "Describe the image.", "images": [IMAGE]}
    await graph.ainvoke(inputs, context=R3Context(max_rounds=1, reflect="judge"))
    assert model.structured_calls == 0
    await graph.ainvoke(inputs, context=R3Context(max_rounds=1, reflect="judge", structured_judge=True))
    assert model.structured_calls == 1  # an explicit request still wins


def test_lenient_readers() -> None:
    assert read_items("1. Is it red?\n2) Is it big?\n- Is it red?\n\n* is it round?", 5) == [
        "Is it red?", "Is it big?", "is it round?"
    ]
    assert read_items("a\nb\nQ3: is there a cat?", 1, questions=True) == ["is there a cat?"]
    passes = ["no further edit needed"]
    assert read_judge('```json\n{"edit": "remove the cat"}\n```', passes) == JudgeReading("edit", "remove the cat")
    assert read_judge("Edit: remove the cat", passes) == JudgeReading("edit", "remove the cat")
    assert read_judge('{"edit": 3}', passes) == JudgeReading("unclear")
    assert JudgeVerdict(edit="x").edit == "x"


async def test_user_strategy_object_and_registered_name() -> None:
    class AlwaysMentionTheCat:
        name = "cat_checker"

        def __init__(self) -> None:
            self.requests: list[ReflectRequest] = []

        async def areflect(self, request: ReflectRequest) -> Reflection:
            self.requests.append(request)
            # Strategies may call the model through the traced caller.
            answer = await request.caller.call("answer", request.pack.render("answer", question="Is there a cat?"))
            ok = "cat" in request.draft
            return Reflection(strategy=self.name, verdict="pass" if ok else "revise",
                              critique=f"mention the cat ({answer.text})", score=float(ok))

    strategy = AlwaysMentionTheCat()
    refined = iter(["a cat", "a cat!"])
    model = ScriptedChatModel(script=lambda p: {"reason": "a dog", "answer": "yes"}.get(stage_of(p)) or next(refined))
    graph = build_r3_graph(model, strategies={"cats": strategy}).compile()
    result = await graph.ainvoke({"instruction": "Describe.", "images": [IMAGE]},
                                 context=R3Context(max_rounds=2, reflect="cats"))
    assert result["output"] == "a cat" and result["stop_reason"] == "passed"
    assert [r.draft for r in strategy.requests] == ["a dog", "a cat"]
    assert "mention the cat (yes)" in model.calls[2]["prompt"]
    # The same object passed directly in the context works too.
    model2 = ScriptedChatModel(script=lambda p: {"reason": "a cat", "answer": "yes"}.get(stage_of(p), "?"))
    again = await run(model2, max_rounds=2, reflect=AlwaysMentionTheCat())
    assert again["stop_reason"] == "passed"


async def test_compiled_graph_as_strategy() -> None:
    class ReflectIO(TypedDict, total=False):
        instruction: str
        draft: str
        images: list[str]
        round: int
        pass_index: int
        verdict: str
        critique: str

    def check(state: ReflectIO) -> dict[str, Any]:
        assert state["images"][0].startswith("data:image/png;base64,")
        ok = "red" in state["draft"]
        return {"verdict": "pass" if ok else "revise", "critique": "" if ok else "it is red"}

    sub = StateGraph(ReflectIO)
    sub.add_node("check", check)
    sub.add_edge(START, "check")
    sub.add_edge("check", END)
    model = ScriptedChatModel(script=truthful_script())
    result = await run(model, max_rounds=2, reflect=sub.compile(name="colour_check"))
    assert [r.reflection.strategy for r in result["rounds"]] == ["colour_check", "colour_check"]
    assert result["output"] == "a red square" and result["stop_reason"] == "passed"
    assert "it is red" in model.calls[1]["prompt"]


async def test_questions_are_answered_concurrently_and_sequentially_on_request() -> None:
    def script(prompt: str) -> str:
        stage = stage_of(prompt)
        return {"reason": "x", "questions": "q one?\nq two?\nq three?\nq four?", "refine": "y"}.get(stage, "yes")

    concurrent = ScriptedChatModel(script=script, delay_s=0.2)
    await run(concurrent, max_rounds=1, num_questions=4)
    answers = [c["t"] for c in concurrent.calls if stage_of(c["prompt"]) == "answer"]
    assert concurrent.max_in_flight == 4
    assert max(answers) - min(answers) < 0.15  # all four started together, not 0.2 s apart

    sequential = ScriptedChatModel(script=script, delay_s=0.05)
    await run(sequential, max_rounds=1, num_questions=4, concurrent_checks=False)
    assert sequential.max_in_flight == 1


async def test_message_flow_renders_the_pack_templates() -> None:
    model = ScriptedChatModel(script=truthful_script())
    await run(model, max_rounds=1, num_questions=2)
    questions_prompt = model.calls[1]["prompt"]
    assert "Draft answer: a blue square" in questions_prompt and "Write 2 short yes/no questions" in questions_prompt
    refine_prompt = model.calls[-1]["prompt"]
    assert "- Is the square blue? -> no (inconsistent)" in refine_prompt
    assert "- Is there a square? -> yes (consistent)" in refine_prompt
    assert isinstance(model.calls[0]["messages"][-1].content, list)
