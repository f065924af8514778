"""Unclear verdicts (re-asked once or ignored, and recorded), reasoning kept out of every stage's text,
structured output detected per backend, chat-template switches, and defaults that fit real models."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from r3graph import R3ConfigError, R3Context, build_r3_graph
from r3graph.serving.env import keeps_offline, vllm_env_defaults
from tests.core.test_loop import IMAGE, run, truthful_script
from tests.fakes import ScriptedChatModel, stage_of


def _script(answers: list[str], judge: str = "no further edit needed") -> Any:
    replies = iter(answers)

    def script(prompt: str) -> str:
        stage = stage_of(prompt)
        if stage == "questions":
            return "Is the square red?\nIs the square on the left?"
        if stage == "answer":
            return next(replies)
        if stage == "judge":
            return judge
        return {"reason": "a red square on the left", "refine": "a red square on the left"}.get(stage, "")

    return script


async def test_an_unclear_answer_is_reasked_once_in_the_stricter_format() -> None:
    model = ScriptedChatModel(script=_script(["I'm not sure.", "Yes", "yes"]))
    result = await run(model, max_rounds=1)
    reflection = result["rounds"][0].reflection
    assert [f.consistent for f in reflection.findings] == [True, True] and reflection.unclear == 0
    reasked = [c["prompt"] for c in model.calls if c["prompt"].endswith("Reply with exactly one word: yes or no.")]
    assert len(reasked) == 1 and "Is the square red?" in reasked[0]
    assert result["stop_reason"] == "passed"  # not a failed check: no needless refine


async def test_an_answer_still_unclear_is_left_out_and_counted() -> None:
    model = ScriptedChatModel(script=_script(["", "no", "I cannot tell."]))
    result = await run(model, max_rounds=1)
    reflection = result["rounds"][0].reflection
    assert [f.consistent for f in reflection.findings] == [None, False]
    assert reflection.unclear == 1 and reflection.verdict == "revise"  # the real "no" still counts


async def test_on_unclear_ignore_never_reasks() -> None:
    model = ScriptedChatModel(script=_script(["Hmm.", "yes"]))
    result = await run(model, max_rounds=1, on_unclear="ignore")
    reflection = result["rounds"][0].reflection
    assert [f.consistent for f in reflection.findings] == [None, True] and reflection.unclear == 1
    assert reflection.verdict == "pass" and len(model.calls) == 4  # reason, questions, 2 answers


async def test_an_unclear_judge_asks_for_no_edit_and_spans_record_it(spans: Any) -> None:
    model = ScriptedChatModel(script=_script([], judge="I'm sorry, I can't help with that."))
    result = await run(model, max_rounds=2, reflect="judge")
    reflection = result["rounds"][0].reflection
    assert reflection.verdict == "pass" and reflection.unclear == 1 and reflection.critique == ""
    assert model.stages() == ["reason", "judge", "judge"]  # one re-ask, then no refine
    reflect_span = next(s for s in spans.get_finished_spans() if s.name == "r3.reflect")
    assert reflect_span.attributes["r3.unclear"] == 1
    assert result["stop_reason"] == "unverified"  # let through, but nothing was read: not "passed"


async def test_a_pass_on_readable_checks_with_one_unclear_is_still_passed() -> None:
    model = ScriptedChatModel(script=_script(["Hmm.", "yes"]))
    result = await run(model, max_rounds=1, on_unclear="ignore")
    assert result["stop_reason"] == "passed"  # one check held; the unclear one was left out


async def test_a_pass_with_every_answer_unclear_is_unverified() -> None:
    model = ScriptedChatModel(script=_script(["Hmm.", "Who knows."]))
    result = await run(model, max_rounds=1, on_unclear="ignore")
    reflection = result["rounds"][0].reflection
    assert reflection.verdict == "pass" and reflection.unclear == 2
    assert result["stop_reason"] == "unverified"


class ThinkingModel(ScriptedChatModel):
    """Writes a reasoning block (or returns it apart, as vLLM's reasoning parser does)."""

    apart: bool = False

    def _reply(self, messages: Any, kwargs: dict[str, Any]) -> ChatResult:
        result = super()._reply(messages, kwargs)
        message = result.generations[0].message
        thought = "Let me think. Maybe no further edit needed? No: change everything."
        if self.apart:
            reply = AIMessage(content=message.content, additional_kwargs={"reasoning_content": thought},
                              usage_metadata=message.usage_metadata)
        else:
            reply = AIMessage(content=f"{thought}\n</think>\n\n{message.content}",
                              usage_metadata=message.usage_metadata)
        return ChatResult(generations=[ChatGeneration(message=reply)])


@pytest.mark.parametrize("apart", [False, True])
async def test_reasoning_never_reaches_a_draft_a_critique_or_an_edit(apart: bool) -> None:
    for reflect in ("judge", "self_questions"):
        model = ThinkingModel(script=truthful_script(), apart=apart)
        result = await run(model, max_rounds=1, reflect=reflect)
        for round_ in result["rounds"]:
            assert "think" not in round_.draft and "Let me think" not in round_.draft
            if round_.reflection is not None:
                assert "Let me think" not in round_.reflection.critique
                assert all("Let me think" not in f.answer for f in round_.reflection.findings)
        assert result["output"] == "a red square"


async def test_chat_template_kwargs_go_where_the_backend_reads_them() -> None:
    class TakesSwitches(ScriptedChatModel):
        supports_chat_template_kwargs: bool = True

    model = TakesSwitches(script=truthful_script())
    await run(model, max_rounds=0, chat_template_kwargs={"enable_thinking": False})
    assert model.calls[0]["kwargs"]["chat_template_kwargs"] == {"enable_thinking": False}
    with pytest.raises(R3ConfigError, match="chat_template_kwargs"):
        await run(ScriptedChatModel(script=truthful_script()), max_rounds=0,
                  chat_template_kwargs={"enable_thinking": False})


async def test_a_backend_that_refuses_response_format_is_asked_in_free_text_from_then_on() -> None:
    """A langchain_openai client may point at a server without structured outputs: detected, not assumed."""
    from r3graph.serving import chat_model_for_server
    from tests.reliability.fake_openai import FakeOpenAI, Reply

    refusal = Reply(status=400, error="response_format type json_schema is not supported by this server")
    judged = [Reply(content="a red square"), Reply(content="No further edit needed.")]
    with FakeOpenAI([judged[0], refusal, judged[1], *judged]) as server:
        graph = build_r3_graph(chat_model_for_server(server.url, "m"), pack="default").compile()
        inputs = {"instruction": "Describe the image.", "images": [IMAGE]}
        for _ in range(2):
            result = await graph.ainvoke(inputs, context=R3Context(max_rounds=1, reflect="judge"))
            assert result["stop_reason"] == "passed"
        bodies = [r.body for r in server.chat_requests]
    assert "response_format" in bodies[1] and "response_format" not in bodies[2]
    assert "response_format" not in bodies[4]  # the next run does not ask again


def test_token_budgets_live_in_the_pack() -> None:
    from r3graph import load_pack

    scenes, default = load_pack("scenes"), load_pack("default")
    context = R3Context()
    assert context.sampling_for("answer", scenes.max_tokens).max_tokens == 24
    assert context.sampling_for("reason", default.max_tokens).max_tokens >= 512
    override = R3Context(sampling={"reason": {"max_tokens": 7}})
    assert override.sampling_for("reason", default.max_tokens).max_tokens == 7
    with pytest.raises(R3ConfigError, match="max_tokens"):
        load_pack({**default.model_dump(), "max_tokens": {"nonsense": 3}})


def test_offline_mode_and_project_caches_only_for_local_models(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("R3GRAPH_OFFLINE", raising=False)
    assert vllm_env_defaults(str(tmp_path))["HF_HUB_OFFLINE"] == "1"
    hub = vllm_env_defaults("Qwen/Qwen2.5-VL-7B-Instruct")
    assert "HF_HUB_OFFLINE" not in hub and "HF_HOME" not in hub
    assert keeps_offline("Qwen/Qwen2.5-VL-7B-Instruct", offline=True)
    monkeypatch.setenv("R3GRAPH_OFFLINE", "1")
    assert vllm_env_defaults("Qwen/Qwen2.5-VL-7B-Instruct")["HF_HUB_OFFLINE"] == "1"


def test_enforce_eager_only_on_cpu_builds(monkeypatch: Any) -> None:
    from r3graph.serving import env
    from r3graph.serving.engine import ChatVLLMEngine
    from r3graph.serving.server import VLLMServer

    for cpu in (True, False):
        monkeypatch.setattr(env, "is_cpu_build", lambda cpu=cpu: cpu)
        assert ChatVLLMEngine(model="m").spec.enforce_eager is cpu
        assert ("--enforce-eager" in VLLMServer("m", port=1).command()) is cpu
    assert ChatVLLMEngine(model="m", enforce_eager=True).spec.enforce_eager is True
