"""The in-process engine (ChatVLLMEngine) against real vLLM."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Literal

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

from tests.helpers import png_data_url, vllm_children

pytestmark = pytest.mark.engine


class Verdict(BaseModel):
    ok: bool
    colour: Literal["red", "green", "blue"]


def _msgs(question: str, url: str, system: str = "You are a careful visual reasoner.") -> list:
    return [SystemMessage(system),
            HumanMessage([{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": question}])]


async def test_chat_with_image_returns_text_and_usage(engine) -> None:
    reply = await engine.ainvoke(_msgs("What is in the image?", png_data_url((200, 30, 30))))
    assert isinstance(reply.content, str) and reply.content
    usage = reply.usage_metadata
    assert usage["input_tokens"] > 16  # 16 image tokens at least
    assert 0 < usage["output_tokens"] <= 24
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert "cache_read" in usage["input_token_details"]
    assert reply.response_metadata["finish_reason"] in {"stop", "length"}


def test_sync_invoke_and_standard_image_block(engine) -> None:
    b64 = png_data_url((30, 200, 30)).split(",", 1)[1]
    msg = HumanMessage([{"type": "image", "base64": b64, "mime_type": "image/png"},
                        {"type": "text", "text": "Describe it."}])
    reply = engine.invoke([msg], max_tokens=4)
    assert reply.usage_metadata["output_tokens"] <= 4


async def test_streaming_yields_chunks_and_usage_once(engine) -> None:
    msgs = _msgs("Describe the scene.", png_data_url((30, 30, 200)))
    chunks = [c async for c in engine.astream(msgs, min_tokens=8)]  # a trained model may stop early
    assert sum(1 for c in chunks if c.content) >= 2
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    full = await engine.ainvoke(msgs, min_tokens=8)  # greedy: the stream must spell the same text
    assert total.content == full.content
    assert total.usage_metadata["output_tokens"] == full.usage_metadata["output_tokens"]


async def test_structured_output_returns_pydantic_object(engine) -> None:
    msgs = _msgs("Give your verdict.", png_data_url((200, 30, 30)))
    verdict = await engine.with_structured_output(Verdict).ainvoke(msgs, max_tokens=64)
    assert isinstance(verdict, Verdict)
    schema = {**Verdict.model_json_schema(), "additionalProperties": False}
    raw = await engine.with_structured_output(schema, include_raw=True).ainvoke(msgs, max_tokens=64)
    assert raw["parsing_error"] is None, raw["raw"].content
    assert set(raw["parsed"]) == {"ok", "colour"}


async def test_structured_output_cut_off_is_an_error(engine) -> None:
    with pytest.raises(OutputParserException, match="max_tokens"):
        await engine.with_structured_output(Verdict).ainvoke(
            _msgs("Verdict?", png_data_url((1, 2, 3))), max_tokens=2)


async def test_second_request_with_same_image_and_prefix_hits_cache(engine) -> None:
    # Unique system text + image: nothing of this prefix can be cached before the first call.
    system = f"Session {uuid.uuid4()}. " + "Look at every shape, its colour and position. " * 6
    url = png_data_url((random.randrange(256), 90, 90))
    first = await engine.ainvoke(_msgs("How many shapes are there?", url, system))
    second = await engine.ainvoke(_msgs("Which colour is the square?", url, system))
    assert first.usage_metadata["input_tokens"] > 96  # several 32-token blocks
    assert first.usage_metadata["input_token_details"]["cache_read"] == 0
    cached = second.usage_metadata["input_token_details"]["cache_read"]
    assert cached >= 64 and cached % engine.block_size == 0


async def test_concurrent_requests(engine) -> None:
    replies = await asyncio.gather(
        *[engine.ainvoke(_msgs(f"Question {i}?", png_data_url((i * 30, 0, 0)))) for i in range(8)])
    assert all(r.usage_metadata["output_tokens"] > 0 for r in replies)


async def test_cancelled_and_abandoned_requests_are_aborted(engine) -> None:
    from r3graph.serving.registry import get_engine

    vllm_engine = get_engine(engine.spec)
    msgs = _msgs("Tell a long story.", png_data_url((5, 5, 5)))
    with pytest.raises(TimeoutError):  # what R3's per-call timeout does
        await asyncio.wait_for(engine.ainvoke(msgs, max_tokens=400, ignore_eos=True), timeout=0.3)
    async for _chunk in engine.astream(msgs, max_tokens=400, ignore_eos=True):
        break  # a consumer that stops reading
    for _ in range(50):
        if vllm_engine.get_num_unfinished_requests() == 0:
            break
        await asyncio.sleep(0.1)
    assert vllm_engine.get_num_unfinished_requests() == 0


def test_instances_with_same_config_share_one_engine(engine) -> None:
    from r3graph.serving import ChatVLLMEngine
    from r3graph.serving.registry import get_engine, running_specs

    other = ChatVLLMEngine(model=engine.model, max_tokens=5, temperature=0.7)  # sampling differs only
    assert other.spec == engine.spec
    assert get_engine(other.spec) is get_engine(engine.spec)
    assert running_specs() == [engine.spec]


async def test_shutdown_leaves_no_child_process(engine) -> None:
    assert vllm_children(), "the engine should have started its core process"
    await engine.ashutdown()
    for _ in range(50):
        if not vllm_children():
            break
        await asyncio.sleep(0.2)
    assert vllm_children() == []
