"""Failures mid-run: retries only where they help, and the typed error keeps the work done so far."""

from __future__ import annotations

import asyncio

import pytest

from r3graph import R3Context, R3Error, R3ModelError, build_r3_graph
from r3graph.graphs import default_retry_policy
from tests.core.test_loop import IMAGE, truthful_script
from tests.fakes import ScriptedChatModel, stage_of

FAST_RETRY = default_retry_policy(max_attempts=3)._replace(initial_interval=0.01, jitter=False)


def failing_at(stage_name: str, exc: Exception, times: int = 99) -> tuple[ScriptedChatModel, list[int]]:
    base = truthful_script(["a green square", "a red square"])
    failures = [0]

    def script(prompt: str) -> str:
        if stage_of(prompt) == stage_name and failures[0] < times:
            failures[0] += 1
            raise exc
        return base(prompt)

    return ScriptedChatModel(script=script), failures


async def invoke(model: ScriptedChatModel, **context: object) -> dict:
    graph = build_r3_graph(model, retry_policy=FAST_RETRY).compile()
    return await graph.ainvoke({"instruction": "Describe.", "images": [IMAGE]}, context=R3Context(**context))


async def test_transient_failure_is_retried_then_carries_the_best_draft() -> None:
    model, failures = failing_at("refine", ConnectionError("server went away"), times=99)
    with pytest.raises(R3ModelError) as caught:
        await invoke(model, max_rounds=2)
    error = caught.value
    assert failures[0] == 3  # RetryPolicy's three attempts, no more
    assert error.transient and error.stage == "refine"
    assert error.best_draft == "a blue square"
    assert len(error.rounds) == 1 and error.rounds[0]["reflection"]["verdict"] == "revise"


async def test_later_failure_keeps_the_refined_draft_and_selection() -> None:
    base = truthful_script(["a green square"])
    calls = {"questions": 0}

    def script(prompt: str) -> str:
        if stage_of(prompt) == "questions":
            calls["questions"] += 1
            if calls["questions"] == 2:
                raise TimeoutError("slow")
        return base(prompt)

    with pytest.raises(R3ModelError) as caught:
        await invoke(ScriptedChatModel(script=script), max_rounds=2)
    assert caught.value.best_draft == "a green square"
    assert [r["draft"] for r in caught.value.rounds] == ["a blue square", "a green square"]


async def test_a_transient_blip_is_absorbed_by_the_retry() -> None:
    model, failures = failing_at("answer", ConnectionError("reset"), times=1)
    result = await invoke(model, max_rounds=1)
    assert failures[0] == 1
    assert result["output"] == "a green square"


async def test_non_transient_errors_are_not_retried() -> None:
    class BadRequest(Exception):
        status_code = 400

    model, failures = failing_at("reason", BadRequest("prompt too long"))
    with pytest.raises(R3ModelError) as caught:
        await invoke(model, max_rounds=1)
    assert failures[0] == 1
    assert not caught.value.transient
    assert caught.value.best_draft is None and caught.value.rounds == []
    assert "prompt too long" in str(caught.value)


async def test_a_model_call_past_its_timeout_fails_as_transient() -> None:
    model = ScriptedChatModel(script=truthful_script(), delay_s=0.5)
    started = asyncio.get_running_loop().time()
    with pytest.raises(R3ModelError, match=r"timed out after 0\.05s"):
        await invoke(model, max_rounds=1, call_timeout_s=0.05)
    assert asyncio.get_running_loop().time() - started < 3


async def test_errors_are_r3_errors() -> None:
    assert issubclass(R3ModelError, R3Error)


async def test_the_run_deadline_bounds_the_whole_loop_and_is_not_retried() -> None:
    from r3graph import R3TimeoutError

    model = ScriptedChatModel(script=truthful_script(), delay_s=0.15)
    started = asyncio.get_running_loop().time()
    with pytest.raises(R3TimeoutError, match="run_timeout_s") as caught:
        await invoke(model, max_rounds=3, run_timeout_s=0.5, call_timeout_s=10)
    elapsed = asyncio.get_running_loop().time() - started
    assert elapsed < 1.5  # the deadline, not 10 s per call or 3 retries
    assert not caught.value.transient
    assert caught.value.best_draft == "a blue square"  # reason finished before the deadline
