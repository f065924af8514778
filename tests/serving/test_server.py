"""vLLM's OpenAI-compatible server started by VLLMServer, used through ChatOpenAI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Literal

import httpx
import psutil
import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from tests.helpers import EXAMPLE_IMAGE, png_data_url

pytestmark = pytest.mark.server


class Verdict(BaseModel):
    ok: bool
    colour: Literal["red", "green", "blue"]


def _msg(question: str, url: str) -> list[HumanMessage]:
    return [HumanMessage([{"type": "image_url", "image_url": {"url": url}},
                          {"type": "text", "text": question}])]


def test_health_and_models(server) -> None:
    with httpx.Client(trust_env=False) as http:
        assert http.get(f"{server.url}/health").status_code == 200
        models = http.get(f"{server.base_url}/models").json()
    assert [m["id"] for m in models["data"]] == [server.served_model_name]


def test_chat_over_http_with_image_reports_cached_tokens(server) -> None:
    from r3graph.serving import chat_model_for_server

    chat = chat_model_for_server(server.url, max_tokens=16)  # model name discovered from /v1/models
    assert chat.model_name == server.served_model_name
    prefix = "Look at every shape, its colour and its position in the picture. " * 5
    url = png_data_url((10, 160, 220))
    first = chat.invoke(_msg(prefix + "How many shapes?", url))
    second = chat.invoke(_msg(prefix + "Which colour is the square?", url))
    assert isinstance(first.content, str) and first.usage_metadata["output_tokens"] > 0
    assert first.usage_metadata["input_tokens"] > 64
    assert second.usage_metadata["input_token_details"]["cache_read"] >= 64


async def test_streaming_and_structured_output_over_http(server) -> None:
    from r3graph.serving import chat_model_for_server

    chat = chat_model_for_server(server.base_url, model=server.served_model_name, max_tokens=16)
    # min_tokens (a vLLM extra): a trained model may answer in one token.
    chunks = [c async for c in chat.astream(_msg("Describe it.", png_data_url((200, 0, 0))),
                                            extra_body={"min_tokens": 8})]
    assert sum(1 for c in chunks if c.content) >= 2
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    assert total.usage_metadata["output_tokens"] > 0  # stream_usage=True
    verdict = await chat.with_structured_output(Verdict, method="json_schema").ainvoke(
        _msg("Verdict?", png_data_url((0, 200, 0))), max_tokens=64)
    assert isinstance(verdict, Verdict)


async def test_concurrent_requests(server) -> None:
    from r3graph.serving import chat_model_for_server

    chat = chat_model_for_server(server.url, max_tokens=16)
    replies = await asyncio.gather(
        *[chat.ainvoke(_msg(f"Question {i}?", png_data_url((0, 0, 25 * i)))) for i in range(8)])
    assert all(r.usage_metadata["output_tokens"] > 0 for r in replies)


def test_cli_run_json_over_http(server) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "r3graph.cli", "run", "--image", str(EXAMPLE_IMAGE), "--base-url", server.url,
         "--max-rounds", "1", "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    result = json.loads(out.stdout)  # stdout holds exactly one JSON object
    assert isinstance(result["output"], str) and result["rounds"]
    assert result["usage"]["calls"] >= 2


def test_bad_flag_fails_with_clear_error(model_dir: str) -> None:
    from r3graph.serving import VLLMServer, VLLMServerError

    bad = VLLMServer(model_dir, extra_args=["--no-such-flag"], startup_timeout=120)
    with pytest.raises(VLLMServerError, match="exited with code") as err:
        bad.start()
    assert "unrecognized arguments: --no-such-flag" in str(err.value)
    assert not bad.is_running()


def test_stop_leaves_nothing_running(server) -> None:
    pgid = server.pid
    members = [p for p in psutil.process_iter() if _pgid(p.pid) == pgid]
    assert len(members) >= 2  # api server + engine core (+ worker)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 30
    assert [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pgid] == []


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
