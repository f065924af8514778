"""Checks as nodes of the R3 graph: each retried alone, streamed, kept across a crash, cached."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langgraph.cache.memory import InMemoryCache
from langgraph.cache.sqlite import SqliteCache
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from r3graph import R3Context, build_r3_graph
from r3graph.checkpointing import checkpoint_serde
from r3graph.errors import R3ModelError
from r3graph.graphs.r3 import default_retry_policy
from tests.core.test_loop import IMAGE, truthful_script
from tests.fakes import ScriptedChatModel, png_bytes, prompt_text, stage_of

INPUTS = {"instruction": "Describe the image.", "images": [IMAGE]}
QUESTIONS = "1. Is the square red?\n2. Is there a square?\n3. Is the square small?"


def three_questions(prompt: str) -> str:
    stage = stage_of(prompt)
    if stage == "questions":
        return QUESTIONS
    return truthful_script()(prompt)


class FlakyChecks(ScriptedChatModel):
    """Answers to questions naming ``word`` fail: ``transient`` ones once (a dropped connection), the
    others every time, after ``fail_after_s`` so that sibling checks have finished by then."""

    word: str = "small"
    transient: bool = True
    fail_after_s: float = 0.0
    failures: int = 0

    async def _agenerate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                         **kwargs: Any) -> ChatResult:
        text = prompt_text(messages)
        if stage_of(text) == "answer" and self.word in text.rsplit("\n", 1)[-1]:
            if self.transient and self.failures == 0:
                self.failures += 1
                self.calls.append({"prompt": text, "kwargs": kwargs, "messages": messages, "t": 0.0})
                raise ConnectionError("connection dropped")
            if not self.transient:
                await asyncio.sleep(self.fail_after_s)
                self.calls.append({"prompt": text, "kwargs": kwargs, "messages": messages, "t": 0.0})
                raise RuntimeError("the model server died")
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


async def test_a_failing_check_is_retried_alone() -> None:
    model = FlakyChecks(script=three_questions)
    graph = build_r3_graph(model).compile()
    result = await graph.ainvoke(INPUTS, context=R3Context(max_rounds=1))
    # One questions call, three answers plus one retry of the failed one; nothing else re-asked.
    assert model.stages() == ["reason", "questions", "answer", "answer", "answer", "answer", "refine"]
    small = [c for c in model.calls if "small" in c["prompt"].rsplit("\n", 1)[-1]]
    assert len(small) == 2 and model.failures == 1
    reflection = result["rounds"][0].reflection
    assert [f.question for f in reflection.findings] == ["Is the square red?", "Is there a square?",
                                                         "Is the square small?"]
    assert result["usage"].calls == 6  # the failed attempt returned nothing to count


async def test_a_resumed_run_does_not_repeat_the_checks_that_finished(tmp_path: Path) -> None:
    database = str(tmp_path / "r3.sqlite")
    config = {"configurable": {"thread_id": "checks-1"}}
    context = R3Context(max_rounds=1)
    dying = FlakyChecks(script=three_questions, transient=False, fail_after_s=0.2)
    async with AsyncSqliteSaver.from_conn_string(database) as saver:
        saver.serde = checkpoint_serde()
        graph = build_r3_graph(dying, retry_policy=default_retry_policy(1)).compile(checkpointer=saver)
        with pytest.raises(R3ModelError) as caught:
            await graph.ainvoke(INPUTS, config, context=context)
        assert caught.value.best_draft == "a blue square" and caught.value.stage == "answer"
        state = await graph.aget_state(config)
        assert state.next == ("check",)  # the two checks that finished are not pending any more
    assert dying.stages() == ["reason", "questions", "answer", "answer", "answer"]

    fresh = ScriptedChatModel(script=three_questions)  # a new process: new model, new graph, same file
    async with AsyncSqliteSaver.from_conn_string(database) as saver:
        saver.serde = checkpoint_serde()
        graph = build_r3_graph(fresh).compile(checkpointer=saver)
        result = await graph.ainvoke(None, config, context=context)
    # Only the check that had failed is asked again; the two that finished were kept.
    assert fresh.stages() == ["answer", "refine"]
    assert "small" in fresh.calls[0]["prompt"].rsplit("\n", 1)[-1]
    findings = result["rounds"][0].reflection.findings
    assert [f.consistent for f in findings] == [True, True, False]
    assert result["output"] == "a red square"


async def test_sequential_checks_run_one_after_another_in_item_order() -> None:
    model = ScriptedChatModel(script=three_questions, delay_s=0.02)
    graph = build_r3_graph(model).compile()
    events = [e async for e in graph.astream(INPUTS, context=R3Context(max_rounds=1, concurrent_checks=False),
                                             stream_mode="custom")]
    assert model.max_in_flight == 1
    assert [e["index"] for e in events if e["stage"] == "answer"] == [0, 1, 2]
    assert [e["stage"] for e in events][:5] == ["reason", "answer", "answer", "answer", "reflect"]


# -- caching ---------------------------------------------------------------------------------------
async def test_a_cached_graph_answers_a_repeated_request_without_calling_the_model(tmp_path: Path) -> None:
    model = ScriptedChatModel(script=three_questions)
    graph = build_r3_graph(model).compile(cache=InMemoryCache(serde=checkpoint_serde()))
    context = R3Context(max_rounds=2)
    first = await graph.ainvoke(INPUTS, context=context)
    calls = len(model.calls)
    # Reason, questions, 3 answers, refine, questions on the new draft, refine: the second round's
    # answers were hits already (an answer's prompt is the question and the image, not the draft).
    assert model.stages() == ["reason", "questions", "answer", "answer", "answer", "refine", "questions", "refine"]
    again = await graph.ainvoke(INPUTS, context=context)
    assert len(model.calls) == calls  # every node came from the cache
    assert again["output"] == first["output"] and again["rounds"] == first["rounds"]

    other_image = await graph.ainvoke({**INPUTS, "images": [png_bytes("blue")]}, context=context)
    assert len(model.calls) == 2 * calls and other_image["output"] == first["output"]  # a miss: new image


async def test_sampled_stages_are_never_served_from_the_cache() -> None:
    model = ScriptedChatModel(script=three_questions)
    graph = build_r3_graph(model).compile(cache=InMemoryCache(serde=checkpoint_serde()))
    sampled = R3Context(max_rounds=1, sampling={"reason": {"temperature": 0.7}})
    await graph.ainvoke(INPUTS, context=sampled)
    before = model.stages()
    await graph.ainvoke(INPUTS, context=sampled)
    # Reason samples, so it calls the model every time; the greedy stages after it hit the cache.
    assert model.stages()[len(before):] == ["reason"]
    seeded = R3Context(max_rounds=1, sampling={"reason": {"temperature": 0.7, "seed": 3}})
    await graph.ainvoke(INPUTS, context=seeded)
    await graph.ainvoke(INPUTS, context=seeded)
    assert model.stages()[len(before) + 1:] == ["reason"]  # seeded: cached after its first call


async def test_what_changes_a_call_changes_its_key(tmp_path: Path) -> None:
    """Instruction, strategy settings and the model are in the key; the cache persists in SQLite."""
    model = ScriptedChatModel(script=three_questions)
    cache = SqliteCache(path=str(tmp_path / "cache.sqlite"), serde=checkpoint_serde())
    graph = build_r3_graph(model).compile(cache=cache)
    await graph.ainvoke(INPUTS, context=R3Context(max_rounds=1))
    n = len(model.calls)
    await graph.ainvoke(INPUTS, context=R3Context(max_rounds=1, num_questions=2))
    # Reason's key holds no strategy settings: a hit; the questions (k=2) are new, their answers not
    # (the first two questions again, both "yes": it passes, no refine).
    assert model.stages()[n:] == ["questions"]
    n = len(model.calls)
    other = ScriptedChatModel(script=three_questions, model_name="other")
    await build_r3_graph(other).compile(cache=cache).ainvoke(INPUTS, context=R3Context(max_rounds=1))
    assert len(other.calls) == 6  # another model: nothing shared
    reopened = ScriptedChatModel(script=three_questions)
    same_file = SqliteCache(path=str(tmp_path / "cache.sqlite"), serde=checkpoint_serde())
    await build_r3_graph(reopened).compile(cache=same_file).ainvoke(INPUTS, context=R3Context(max_rounds=1))
    assert reopened.calls == []  # the same model and request: served from the file
