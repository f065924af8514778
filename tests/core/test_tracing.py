"""Spans: one per run, one per stage, one per model call (GenAI conventions); content only on request."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from r3graph.context import CAPTURE_CONTENT_ENV
from r3graph.tracing import run_spans
from tests.core.test_loop import run, truthful_script
from tests.fakes import ScriptedChatModel


async def test_span_tree_and_genai_attributes(spans: InMemorySpanExporter) -> None:
    await run(ScriptedChatModel(script=truthful_script()), max_rounds=1)
    finished = spans.get_finished_spans()
    by_name: dict[str, list] = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    assert len(by_name["invoke_workflow r3"]) == 1
    assert len(by_name["r3.reason"]) == 1 and len(by_name["r3.reflect"]) == 1 and len(by_name["r3.refine"]) == 1
    # The plan's two questions are answered in check nodes; their verdict in reflect_verdict.
    assert len(by_name["r3.check"]) == 2 and len(by_name["r3.reflect_verdict"]) == 1
    assert len(by_name["chat scripted"]) == 5
    workflow = by_name["invoke_workflow r3"][0]
    assert workflow.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert workflow.attributes["r3.stop_reason"] == "max_rounds"
    assert workflow.attributes["r3.model_calls"] == 5
    # Every stage span is a child of the run span; every chat span is inside a stage span.
    stage_ids = set()
    for name in ("r3.reason", "r3.reflect", "r3.check", "r3.reflect_verdict", "r3.refine"):
        span = by_name[name][0]
        assert span.parent.span_id == workflow.context.span_id
        assert span.context.trace_id == workflow.context.trace_id
        stage_ids.add(span.context.span_id)
    assert by_name["r3.reflect"][0].attributes["r3.checks"] == 2
    reflect = by_name["r3.reflect_verdict"][0]
    assert reflect.attributes["r3.verdict"] == "revise"
    assert reflect.attributes["r3.reflect.strategy"] == "self_questions"
    assert reflect.attributes["r3.round"] == 0
    all_ids = {s.context.span_id for s in finished}
    for chat in by_name["chat scripted"]:
        assert chat.parent.span_id in all_ids - {workflow.context.span_id}
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.request.model"] == "scripted"
        assert chat.attributes["gen_ai.usage.input_tokens"] > 16
        assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 16
        assert "gen_ai.input.messages" not in chat.attributes  # content capture is off by default
        assert "gen_ai.output.messages" not in chat.attributes
    assert len(run_spans) == 0  # nothing left open


@pytest.mark.parametrize("how", ["context", "env"])
async def test_content_capture_on_request_never_includes_image_bytes(
    spans: InMemorySpanExporter, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = {}
    if how == "env":
        monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    else:
        kwargs["capture_content"] = True
    await run(ScriptedChatModel(script=truthful_script()), max_rounds=0, **kwargs)
    chat = next(s for s in spans.get_finished_spans() if s.name == "chat scripted")
    messages = json.loads(chat.attributes["gen_ai.input.messages"])
    assert messages[-1]["parts"][0] == {"type": "image", "content": "[image omitted]"}
    assert messages[-1]["parts"][-1]["content"] == "Describe the image."
    assert json.loads(chat.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == "a blue square"
    for span in spans.get_finished_spans():
        assert "base64" not in json.dumps(dict(span.attributes))


async def test_a_failed_run_ends_its_span_with_an_error(spans: InMemorySpanExporter) -> None:
    def broken(prompt: str) -> str:
        raise ValueError("model exploded")

    with pytest.raises(Exception, match="model exploded"):
        await run(ScriptedChatModel(script=broken), max_rounds=1)
    workflow = next(s for s in spans.get_finished_spans() if s.name == "invoke_workflow r3")
    assert workflow.status.status_code.name == "ERROR"
    assert workflow.attributes["r3.failed_stage"] == "reason"
    assert len(run_spans) == 0
