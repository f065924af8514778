"""Serving pieces that need no vLLM process: message conversion, CLI parsing, lazy imports."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from PIL import Image

from r3graph.cli import _split_passthrough, build_parser
from r3graph.serving.client import normalize_base_url
from r3graph.serving.messages import UnsupportedContentError, count_images, to_vllm_conversation
from r3graph.serving.server import VLLMServer
from tests.helpers import EXAMPLE_IMAGE, png_data_url


def test_importing_r3graph_does_not_import_vllm() -> None:
    code = "import r3graph, r3graph.serving, r3graph.cli, sys; print('vllm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_image_form_becomes_a_pil_part(tmp_path) -> None:
    url = png_data_url((1, 2, 3))
    b64 = url.split(",", 1)[1]
    parts = [
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "image_url", "image_url": url},
        {"type": "image", "base64": b64, "mime_type": "image/png"},
        {"type": "image", "source_type": "base64", "data": b64, "mime_type": "image/png"},
        {"type": "image", "url": str(EXAMPLE_IMAGE)},
        {"type": "image", "url": EXAMPLE_IMAGE.as_uri()},
        {"type": "text", "text": "what?"},
    ]
    conv = to_vllm_conversation([SystemMessage("sys"), HumanMessage(parts), AIMessage("ok")])
    assert [m["role"] for m in conv] == ["system", "user", "assistant"]
    assert count_images(conv) == 6
    assert all(isinstance(p["image_pil"], Image.Image) for p in conv[1]["content"][:6])
    assert conv[0]["content"] == "sys"  # text-only content stays a string


def test_remote_image_urls_are_refused() -> None:
    with pytest.raises(UnsupportedContentError, match="remote"):
        to_vllm_conversation([HumanMessage([{"type": "image_url", "image_url": {"url": "https://x/y.png"}}])])


def test_server_command_has_r3_flags_and_passthrough_last() -> None:
    srv = VLLMServer("/models/m", port=1234, extra_args=["--block-size", "64", "--max-num-seqs", "8"])
    cmd = srv.command()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    for flag in ("--enable-prefix-caching", "--enable-prompt-tokens-details", "--limit-mm-per-prompt"):
        assert flag in cmd
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[-4:] == ["--block-size", "64", "--max-num-seqs", "8"]  # argparse: last one wins
    assert srv.base_url == "http://127.0.0.1:1234/v1" and srv.served_model_name == "m"


def test_extra_env_reaches_the_server_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_SERVER_DEV_MODE", raising=False)
    monkeypatch.setenv("R3GRAPH_TEST_MARK", "caller")
    srv = VLLMServer("/models/m", port=1234, extra_env={"VLLM_SERVER_DEV_MODE": "1"})
    env = srv.child_env()
    assert env["VLLM_SERVER_DEV_MODE"] == "1" and env["R3GRAPH_TEST_MARK"] == "caller"
    assert "VLLM_SERVER_DEV_MODE" not in os.environ and "VLLM_SERVER_DEV_MODE" not in VLLMServer("/m").child_env()


def test_cli_parsing() -> None:
    ours, extra = _split_passthrough(["serve", "--model", "m", "--port", "9", "--", "--dtype", "float32"])
    args = build_parser().parse_args(ours)
    assert (args.command, args.model, args.port, args.host) == ("serve", "m", 9, "127.0.0.1")
    assert extra == ["--dtype", "float32"]
    run = build_parser().parse_args(["run", "--image", "a.png", "--json", "--max-rounds", "2"])
    assert run.image == ["a.png"] and run.json and run.max_rounds == 2


def test_normalize_base_url() -> None:
    assert normalize_base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert normalize_base_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
