"""LangGraph's node cache on the real vLLM engine: repeated greedy requests are served without
model calls, a new image misses, sampled calls are never served from the cache."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler

from tests.helpers import EXAMPLE_IMAGE, png_data_url


class CallCounter(AsyncCallbackHandler):
    """Counts the chat model calls that reach the engine (a cache hit skips the node's call)."""

    def __init__(self) -> None:
        self.calls = 0

    async def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1


@pytest.mark.engine
async def test_the_cache_serves_repeated_greedy_runs_and_never_sampled_calls(engine, model_dir: str) -> None:
    from langgraph.cache.memory import InMemoryCache

    from r3graph import R3Context, build_r3_graph
    from r3graph.checkpointing import checkpoint_serde

    pack = "scenes" if model_dir.rstrip("/").endswith("scenes-vlm") else "default"
    graph = build_r3_graph(engine, pack=pack).compile(cache=InMemoryCache(serde=checkpoint_serde()))
    counter = CallCounter()
    config = {"callbacks": [counter]}
    inputs = {"instruction": "Describe the image.", "images": [str(EXAMPLE_IMAGE)]}
    context = R3Context(max_rounds=1, num_questions=3)

    first = await graph.ainvoke(inputs, config, context=context)
    calls = counter.calls
    assert calls == first["usage"].calls >= 3
    again = await graph.ainvoke(inputs, config, context=context)
    assert counter.calls == calls  # a hit for every node: no engine call
    assert again["output"] == first["output"] and again["rounds"] == first["rounds"]

    other = await graph.ainvoke({**inputs, "images": [png_data_url((200, 30, 30))]}, config, context=context)
    assert counter.calls - calls == other["usage"].calls >= 3  # a new image: every key misses

    before = counter.calls
    sampled = R3Context(max_rounds=0, sampling={"reason": {"temperature": 1.0, "max_tokens": 24}})
    await graph.ainvoke(inputs, config, context=sampled)
    await graph.ainvoke(inputs, config, context=sampled)
    assert counter.calls - before == 2  # sampled: every run calls the engine
