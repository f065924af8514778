"""Fault matrix: every failure of the model server ends the run within its timeout, with a valid
result or a typed :class:`R3Error` that says what happened and keeps the work done so far; retries
happen only where another attempt can help; nothing the test started keeps running.

Fake-server cases use :mod:`tests.reliability.fake_openai` (fast). Real-server cases run vLLM:
the prompt longer than the context reuses the session ``server``; the server killed mid-run starts
its own server after every other server test (see ``_AFTER_SERVER`` in tests/conftest.py); the
engine that fails to start is an engine test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict

import psutil
import pytest
from langgraph.graph import END, START, StateGraph

from r3graph import R3Context, R3Error, R3ModelError, R3TimeoutError, build_r3_graph
from r3graph.graphs import default_retry_policy
from r3graph.serving import chat_model_for_server
from r3graph.serving.server import free_port
from r3graph.tracing import run_spans
from tests.helpers import EXAMPLE_IMAGE, vllm_children
from tests.reliability.fake_openai import FakeOpenAI, Reply, SilentListener

# Backoff without jitter, short enough for tests and long enough to measure: 0.2 s, then 0.4 s.
RETRY = default_retry_policy(max_attempts=3)._replace(initial_interval=0.2, backoff_factor=2.0, jitter=False)
INPUTS: dict[str, Any] = {"instruction": "Caption the image.", "images": [str(EXAMPLE_IMAGE)]}
SLACK_S = 1.5  # graph start-up and teardown on a loaded 2-core machine
WORKFLOW_SPAN = "invoke_workflow r3"


def _tcp_on(port: int) -> list[Any]:
    conns = psutil.Process().net_connections(kind="tcp")
    return [c for c in conns if (c.laddr and c.laddr.port == port) or (c.raddr and c.raddr.port == port)]


@pytest.fixture
def leaks() -> Iterator[list[int]]:
    """Ports the test used; afterwards no thread the test started and no socket on those ports remains."""
    before = set(threading.enumerate())
    ports: list[int] = []
    yield ports
    deadline = time.monotonic() + 3
    while True:
        # asyncio_N: the event loop's default executor, shut down with the loop (pytest-asyncio's).
        threads = [t for t in threading.enumerate()
                   if t not in before and t.is_alive() and not t.name.startswith("asyncio_")]
        sockets = [c for p in ports for c in _tcp_on(p) if c.status != psutil.CONN_TIME_WAIT]
        if (not threads and not sockets) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert threads == [], f"threads left running: {threads}"
    assert sockets == [], f"sockets left open: {sockets}"
    assert run_spans._spans == {}, "a run span was never ended"


@pytest.fixture
def fake(leaks: list[int]) -> Iterator[Callable[..., FakeOpenAI]]:
    started: list[FakeOpenAI] = []

    def make(script: Any = (), **kwargs: Any) -> FakeOpenAI:
        server = FakeOpenAI(script=script, **kwargs).start()
        started.append(server)
        leaks.append(server.port)
        return server

    yield make
    for server in started:
        server.stop()


def graph_for(url: str, **client: Any) -> Any:
    chat = chat_model_for_server(url, model="fake", **{"max_retries": 0, **client})
    return build_r3_graph(chat, pack="scenes", retry_policy=RETRY).compile()


async def run_r3(url: str, context: R3Context, **client: Any) -> tuple[dict[str, Any] | R3Error, float]:
    """The result (or the typed error) and the elapsed seconds; asserts it ended within run_timeout_s."""
    graph = graph_for(url, **client)
    t0 = time.monotonic()
    try:
        outcome: dict[str, Any] | R3Error = await graph.ainvoke(INPUTS, context=context)
    except R3Error as exc:
        outcome = exc
    elapsed = time.monotonic() - t0
    assert elapsed < context.run_timeout_s + SLACK_S, f"took {elapsed:.1f}s (run_timeout_s={context.run_timeout_s})"
    return outcome, elapsed


def ctx(**fields: Any) -> R3Context:
    return R3Context(**{"call_timeout_s": 2.0, "run_timeout_s": 8.0, "max_rounds": 1, **fields})


def chat_spans(spans: Any) -> list[Any]:
    return [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]


def assert_backoff(times: list[float]) -> None:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.2 * 0.95 and gaps[1] >= 0.4 * 0.95, f"no backoff between attempts: {gaps}"


# -- connection-level faults --------------------------------------------------------------------


async def test_server_not_running_is_a_transient_error_after_the_retries(spans: Any, leaks: list[int]) -> None:
    port = free_port()
    leaks.append(port)
    outcome, _ = await run_r3(f"http://127.0.0.1:{port}/v1", ctx())
    assert isinstance(outcome, R3ModelError) and outcome.transient
    assert outcome.stage == "reason" and "Connection" in str(outcome)
    assert outcome.best_draft is None and outcome.rounds == []  # no work was done
    assert len(chat_spans(spans)) == 3  # connection refused can heal: all three attempts


async def test_a_server_that_never_answers_hits_the_call_timeout(leaks: list[int]) -> None:
    with SilentListener() as silent:
        leaks.append(silent.port)
        outcome, elapsed = await run_r3(silent.url, ctx(call_timeout_s=0.5, run_timeout_s=4.0))
    assert isinstance(outcome, R3ModelError) and outcome.transient
    assert not isinstance(outcome, R3TimeoutError)
    assert "timed out after 0.5s (call_timeout_s)" in str(outcome)
    assert elapsed >= 3 * 0.5 + 0.2 + 0.4 - 0.1  # three attempts with backoff between them


async def test_a_slow_server_is_cut_by_the_run_deadline_and_keeps_the_draft(fake: Any) -> None:
    server = fake(default=Reply(delay_s=0.6))
    outcome, _ = await run_r3(server.url, ctx(call_timeout_s=5.0, run_timeout_s=1.0))
    assert isinstance(outcome, R3TimeoutError) and not outcome.transient
    assert "run_timeout_s" in str(outcome)
    assert outcome.best_draft == "a red square on the left" and len(outcome.rounds) == 1
    assert len(server.chat_requests) == 2  # reason, then the reflect call the deadline cut; not retried


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_retried_with_backoff_then_a_typed_error(fake: Any, status: int) -> None:
    server = fake(default=Reply(status=status))
    outcome, _ = await run_r3(server.url, ctx())
    assert isinstance(outcome, R3ModelError) and outcome.transient
    assert f"Error code: {status}" in str(outcome) and outcome.stage == "reason"
    requests = server.chat_requests
    assert len(requests) == 3
    assert_backoff([r.t for r in requests])


async def test_a_503_that_recovers_on_the_second_attempt_gives_a_valid_result(fake: Any) -> None:
    server = fake([Reply(status=503)])
    outcome, _ = await run_r3(server.url, ctx())
    assert isinstance(outcome, dict), outcome
    assert outcome["output"] == "a red square on the left"
    # reason twice (503, then OK), questions, two answers: no other retry.
    assert len(server.chat_requests) == 5


async def test_the_default_client_does_not_multiply_the_graph_retries(fake: Any) -> None:
    """chat_model_for_server's default used to be max_retries=1: 3 graph attempts x 2 = 6 requests."""
    server = fake(default=Reply(status=500))
    chat = chat_model_for_server(server.url, model="fake")
    assert chat.max_retries == 0
    outcome, _ = await run_r3(server.url, ctx(), max_retries=chat.max_retries)
    assert isinstance(outcome, R3ModelError)
    assert len(server.chat_requests) == 3


async def test_a_4xx_is_not_retried(fake: Any) -> None:
    server = fake([Reply(), Reply(status=400)])
    outcome, _ = await run_r3(server.url, ctx())
    assert isinstance(outcome, R3ModelError) and not outcome.transient
    assert "Error code: 400" in str(outcome) and outcome.stage == "questions"
    assert outcome.best_draft == "a red square on the left" and len(outcome.rounds) == 1
    assert len(server.chat_requests) == 2


async def test_a_reply_cut_off_mid_body_is_retried_and_keeps_the_draft(fake: Any) -> None:
    server = fake([Reply()], default=Reply(cut_body=True))
    outcome, _ = await run_r3(server.url, ctx())
    assert isinstance(outcome, R3ModelError) and outcome.transient
    assert outcome.stage == "questions" and "Connection" in str(outcome)
    assert outcome.best_draft == "a red square on the left"
    assert [r["draft"] for r in outcome.rounds] == ["a red square on the left"]
    assert len(server.chat_requests) == 1 + 3


# -- content-level faults -------------------------------------------------------------------------


async def test_a_judge_reply_in_free_text_is_tolerated(fake: Any) -> None:
    free_text = "Hmm, the caption seems mostly fine, I guess."
    server = fake([Reply(), Reply(content=free_text)])
    outcome, _ = await run_r3(server.url, ctx(reflect="judge", structured_judge=True))  # the scenes pack is off
    assert isinstance(outcome, dict), outcome
    first = outcome["rounds"][0]
    assert first.reflection.verdict == "revise" and first.reflection.critique == free_text
    assert outcome["output"] == "a red square on the left"
    assert "response_format" in server.chat_requests[1].body  # JSON was asked for, text came back
    assert len(server.chat_requests) == 3  # reason, judge, refine: no retry for unparsable JSON


async def test_an_empty_draft_is_a_typed_error_not_an_empty_answer(fake: Any) -> None:
    server = fake([Reply(content="")])
    outcome, _ = await run_r3(server.url, ctx())
    assert isinstance(outcome, R3ModelError) and not outcome.transient
    assert "empty draft" in str(outcome) and outcome.stage == "reason"
    assert len(server.chat_requests) == 1


async def test_an_empty_refine_keeps_the_previous_draft_in_the_error(fake: Any) -> None:
    server = fake([Reply(), Reply(content="Make the square red."), Reply(content="")])
    outcome, _ = await run_r3(server.url, ctx(reflect="judge"))
    assert isinstance(outcome, R3ModelError) and outcome.stage == "refine"
    assert outcome.best_draft == "a red square on the left" and len(outcome.rounds) == 1


async def test_an_answer_cut_at_max_tokens_is_kept_as_the_draft_and_counted(fake: Any, spans: Any) -> None:
    server = fake([Reply(content="a red squ", finish_reason="length")])
    outcome, _ = await run_r3(server.url, ctx())
    assert isinstance(outcome, dict), outcome
    assert outcome["rounds"][0].draft == "a red squ"  # kept as written (no retry: greedy would repeat it)
    assert len(server.chat_requests) == 4
    assert outcome["usage"].truncated_calls == 1  # the caller can see the draft may be cut short
    reasons = [tuple(s.attributes["gen_ai.response.finish_reasons"]) for s in chat_spans(spans)]
    assert reasons.count(("length",)) == 1 and reasons.count(("stop",)) == 3


# -- cancellation -----------------------------------------------------------------------------------


class Parent(TypedDict, total=False):
    instruction: str
    images: list[str]
    output: str


async def test_cancelling_a_parent_graph_ends_the_r3_run_promptly(fake: Any, spans: Any) -> None:
    server = fake([Reply()], default=Reply(hang=True))
    r3 = graph_for(server.url)
    parent = StateGraph(Parent, context_schema=R3Context)
    parent.add_node("r3", r3)
    parent.add_edge(START, "r3")
    parent.add_edge("r3", END)
    app: Any = parent.compile()
    before = asyncio.all_tasks()
    task = asyncio.create_task(app.ainvoke(INPUTS, context=ctx(call_timeout_s=30, run_timeout_s=60)))
    while len(server.chat_requests) < 2:  # noqa: ASYNC110 -- reason answered, the first reflect call hangs
        await asyncio.sleep(0.02)
    t0 = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - t0 < 1.0
    await asyncio.sleep(0.05)
    assert asyncio.all_tasks() - before == set()  # no node or model call keeps running
    workflow = [s for s in spans.get_finished_spans() if s.name == WORKFLOW_SPAN]
    assert len(workflow) == 1 and not workflow[0].status.is_ok
    assert len(server.chat_requests) == 2  # cancellation is not retried


# -- real vLLM ------------------------------------------------------------------------------------------


@pytest.mark.server
async def test_a_prompt_longer_than_the_context_is_not_retried(server: Any, spans: Any) -> None:
    chat = chat_model_for_server(server.base_url, model=server.served_model_name)
    graph: Any = build_r3_graph(chat, pack="default", retry_policy=RETRY).compile()
    inputs = {**INPUTS, "instruction": "Describe every shape. " * 350}  # ~7700 chars, far past 512 tokens
    t0 = time.monotonic()
    with pytest.raises(R3ModelError) as caught:
        await graph.ainvoke(inputs, context=ctx(call_timeout_s=30, run_timeout_s=60))
    assert time.monotonic() - t0 < 30
    error = caught.value
    assert not error.transient and error.stage == "reason" and "Error code: 400" in str(error)
    assert "context length" in str(error) or "maximum" in str(error)
    assert len(chat_spans(spans)) == 1  # not retried
    assert server.is_running()


@pytest.mark.server
async def test_a_server_killed_mid_run_fails_typed_with_the_draft(server: Any, model_dir: str) -> None:
    """Kills a server after reason. Sorted after every other server test (conftest ``_AFTER_SERVER``):
    the session server is stopped first (one vLLM at a time) and this test starts its own."""
    from r3graph.serving import VLLMServer

    server.stop()
    own = VLLMServer(model_dir, startup_timeout=400).start()
    pgid = own.pid
    assert pgid is not None
    try:
        chat = chat_model_for_server(own.base_url, model=own.served_model_name)
        graph: Any = build_r3_graph(chat, pack="scenes", retry_policy=RETRY).compile()
        t0 = time.monotonic()
        with pytest.raises(R3ModelError) as caught:
            async for update in graph.astream(INPUTS, context=ctx(call_timeout_s=20, run_timeout_s=60),
                                              stream_mode="updates"):
                if "reason" in update:
                    os.killpg(pgid, signal.SIGKILL)
        assert time.monotonic() - t0 < 60
    finally:
        own.stop()
    error = caught.value
    assert error.transient and error.stage in {"reflect", "questions"}
    assert error.best_draft and len(error.rounds) == 1 and error.rounds[0]["draft"] == error.best_draft
    assert [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pgid] == []
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", own.port)) != 0  # nothing listens any more


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.engine
def test_an_engine_that_cannot_start_fails_clearly_and_leaves_nothing(model_dir: str, tmp_path: Path) -> None:
    from r3graph.serving import ChatVLLMEngine

    broken = tmp_path / "broken-model"
    broken.mkdir()
    for item in Path(model_dir).iterdir():
        if item.name != "config.json":
            (broken / item.name).symlink_to(item)
    config = json.loads((Path(model_dir) / "config.json").read_text())
    config["model_type"] = "no-such-architecture"
    (broken / "config.json").write_text(json.dumps(config))
    before = {p.pid for p in vllm_children()}
    t0 = time.monotonic()
    bad = ChatVLLMEngine(model=str(broken), max_tokens=8)
    with pytest.raises(Exception) as caught:  # vLLM's own error; the message is checked
        bad.start()
    assert time.monotonic() - t0 < 120
    assert "no-such-architecture" in str(caught.value)
    bad.shutdown()  # only this spec: the session engine other tests use stays up
    assert {p.pid for p in vllm_children()} - before == set()
