"""The image server of a learned token-image model: vLLM (real engine) behind vllm-omni's image API,
driven by OmniImageClient as the R3 graph drives it. The model is tiny and random
(tests/serving/token_image_model.py), so the tests check the plumbing: which tokens vLLM may sample,
how many, what the seed does, that the PNG carries exactly the sampled codes, and that every error
answer has the stand-in's shape. Engine tests share one server (a vLLM start costs ~40-100 s here).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from r3graph.errors import R3ConfigError
from r3graph.image_generation import ImageParams
from r3graph.serving.env import project_cache_dir
from r3graph.serving.image_client import OmniImageClient, discover_image_model
from r3graph_scenes.paint_server import PaintServer
from tests.serving.token_image_model import GridTokenizer, build_tiny_token_image_model

PROMPT = "a large red circle left of a small blue square"


@pytest.fixture(scope="session")
def token_model_dir() -> Path:
    path = (project_cache_dir() or Path.home() / ".cache" / "r3graph") / "tiny-token-image"
    if not (path / "r3graph.json").is_file():
        build_tiny_token_image_model(path)
    return path


@pytest.fixture(scope="module")
def token_server(token_model_dir: Path) -> Iterator[Any]:
    from r3graph.serving import shutdown_engines
    from r3graph.serving.image_server import TokenImageServer

    shutdown_engines()  # one vLLM instance at a time on this machine (see conftest)
    with TokenImageServer(token_model_dir) as server:
        yield server
    shutdown_engines()


def _png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        return img.size


def _codes(png: bytes, tokenizer: GridTokenizer) -> tuple[int, ...]:
    with Image.open(io.BytesIO(png)) as img:
        return tuple(int(c) for c in tokenizer.encode([img.convert("RGB")])[0])


# -- with the engine ---------------------------------------------------------------------------------------


@pytest.mark.engine
@pytest.mark.parametrize("api", ["images", "chat"])
async def test_a_generation_is_a_png_of_the_requested_size_made_of_exactly_64_sampled_codes(
        token_server: Any, token_model_dir: Path, api: str) -> None:
    tokenizer = GridTokenizer.load(token_model_dir / "tokenizer")
    before = token_server.counts["code_tokens"]
    async with OmniImageClient(token_server.url, model=token_model_dir.name, api=api) as client:
        png = await client.agenerate(PROMPT, ImageParams(size="128x128", seed=3))
        wide = await client.agenerate(PROMPT, ImageParams(size="96x48", seed=3))
    assert _png_size(png) == (128, 128) and _png_size(wide) == (96, 48)
    assert token_server.counts["code_tokens"] - before == 2 * 64  # vLLM gave 64 tokens an image, all codes
    sampled = token_server.token_maker.recent_codes[-2]
    assert len(sampled) == 64 and _codes(png, tokenizer) == sampled  # the PNG is those very codes


@pytest.mark.engine
async def test_the_seed_fixes_the_image_and_other_seeds_or_none_differ(token_server: Any) -> None:
    async with OmniImageClient(token_server.url) as client:
        first = await client.agenerate(PROMPT, ImageParams(seed=7))
        again = await client.agenerate(PROMPT, ImageParams(seed=7))
        other = await client.agenerate(PROMPT, ImageParams(seed=8))
        unseeded = [await client.agenerate(PROMPT, ImageParams()) for _ in range(2)]
    # 64 draws from 16 codes at temperature 1: two samples agree everywhere with negligible chance.
    assert first == again and other != first and unseeded[0] != unseeded[1]
    assert _png_size(first) == (256, 256)  # the server's default size


@pytest.mark.engine
def test_temperature_zero_is_greedy_and_n_images_of_one_seed_differ(token_server: Any) -> None:
    with httpx.Client(trust_env=False, timeout=60) as http:
        greedy = [http.post(f"{token_server.url}/images/generations",
                            json={"prompt": PROMPT, "temperature": 0, "size": "64x64"}).json() for _ in range(2)]
        two = http.post(f"{token_server.url}/images/generations", json={"prompt": PROMPT, "n": 2, "seed": 1}).json()
    assert greedy[0]["data"][0]["b64_json"] == greedy[1]["data"][0]["b64_json"]
    assert len(two["data"]) == 2 and two["data"][0]["b64_json"] != two["data"][1]["b64_json"]
    prompt_tokens = len(f"<bos> <gen> {PROMPT} <boi>".split())
    assert two["usage"] == {"input_tokens": 2 * prompt_tokens, "output_tokens": 128,
                            "total_tokens": 2 * prompt_tokens + 128}


@pytest.mark.engine
@pytest.mark.parametrize("api", ["images", "chat"])
async def test_an_edit_reads_the_source_codes_keeps_the_size_and_hits_the_prefix_cache(
        token_server: Any, token_model_dir: Path, api: str) -> None:
    tokenizer = GridTokenizer.load(token_model_dir / "tokenizer")
    async with OmniImageClient(token_server.url, api=api) as client:
        source = await client.agenerate(PROMPT, ImageParams(size="128x128", seed=11))
        prompt_before, cached_before = token_server.counts["prompt_tokens"], token_server.counts["cached_tokens"]
        edited = await client.aedit(source, "make the red circle blue", ImageParams(seed=2))
        again = await client.aedit(source, "make the red circle blue", ImageParams(seed=2))
    assert _png_size(edited) == (128, 128) and edited == again and edited != source
    # <bos> <edit> <boi> + the 64 source codes + <eoi> + 5 words + <boi>: the source went in as codes.
    assert token_server.counts["prompt_tokens"] - prompt_before == 2 * (3 + 64 + 1 + 5 + 1)
    assert len(_codes(edited, tokenizer)) == 64
    assert token_server.counts["cached_tokens"] - cached_before >= 64  # the repeat reuses the source's blocks


@pytest.mark.engine
def test_unknown_words_are_read_as_unknown_and_reported_too_long_prompts_refused(token_server: Any) -> None:
    with httpx.Client(trust_env=False, timeout=60) as http:
        reply = http.post(f"{token_server.url}/images/generations", json={"prompt": "a red zebra"}).json()
        long = http.post(f"{token_server.url}/images/generations", json={"prompt": "a " * 200})
        codes = http.post(f"{token_server.url}/images/generations", json={"prompt": "a <c3> circle"})
    assert reply["data"][0]["revised_prompt"] == "a red <unk>" and token_server.counts["unknown_words"] >= 1
    assert long.status_code == 400 and long.json()["error"]["code"] == "prompt_too_long"
    assert "256 positions" in long.json()["error"]["message"]
    assert codes.status_code == 400 and codes.json()["error"]["code"] == "code_tokens_in_prompt"


@pytest.mark.engine
@pytest.mark.parametrize("api", ["images", "chat"])
async def test_the_r3_graph_drives_it_through_the_unchanged_client(token_server: Any, api: str) -> None:
    """Output mode image, judge always asking for one edit: 1 generation + 2 edits, each round a new PNG."""
    from r3graph import R3Context, build_r3_graph
    from tests.fakes import ScriptedChatModel

    def judge(text: str, images: list[bytes]) -> str:
        assert len(images) == 1 and text.endswith("Judge the image."), text
        return json.dumps({"edit": "make the red circle blue"})

    generations, edits = token_server.counts["generations"], token_server.counts["edits"]
    async with OmniImageClient(token_server.url, api=api) as client:
        graph = build_r3_graph(ScriptedChatModel(script=judge, sees_images=True), pack="scenes",
                               image_backend=client).compile()
        result = await graph.ainvoke({"instruction": PROMPT}, context=R3Context(
            output="image", reflect="judge", max_rounds=2, image=ImageParams(seed=5, size="128x128")))
    images = [r.image for r in result["rounds"]]
    assert len(images) == 3 and len(set(images)) == 3 and result["stop_reason"] == "max_rounds"
    assert all(_png_size(png) == (128, 128) for png in images) and result["image"] == images[-1]
    assert (token_server.counts["generations"] - generations, token_server.counts["edits"] - edits) == (1, 2)


_BAD_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("images/generations", {"json": {"prompt": PROMPT, "size": "8x8"}}),
    ("images/generations", {"json": {"prompt": PROMPT, "size": "big"}}),
    ("images/generations", {"json": {"prompt": "  "}}),
    ("images/generations", {"json": {"prompt": PROMPT, "model": "ByteDance-Seed/BAGEL-7B-MoT"}}),
    ("images/generations", {"json": {"prompt": PROMPT, "n": 9}}),
    ("images/generations", {"json": {"prompt": PROMPT, "seed": "x"}}),
    ("images/generations", {"json": {"prompt": PROMPT, "response_format": "url"}}),
    ("images/edits", {"data": {"prompt": "x"}}),
    ("images/edits", {"data": {"prompt": "", "size": "8x8"}, "files": {"image": ("i.png", b"png")}}),
    ("chat/completions", {"json": {"messages": [{"role": "user", "content": PROMPT}]}}),  # no modalities
    ("chat/completions", {"json": {"modalities": ["image"], "model": "other",
                                   "messages": [{"role": "user", "content": PROMPT}]}}),
    ("images/nothing", {"json": {}}),
]


@pytest.mark.engine
def test_errors_have_the_stand_ins_status_code_and_shape(token_server: Any) -> None:
    with PaintServer() as painter, httpx.Client(trust_env=False, timeout=60) as http:
        for path, send in _BAD_REQUESTS:
            ours = http.post(f"{token_server.url}/{path}", **send)
            stand_in = http.post(f"{painter.url}/{path}", **send)
            assert (ours.status_code, set(ours.json())) == (stand_in.status_code, {"error"}), (path, send)
            mine, theirs = ours.json()["error"], stand_in.json()["error"]
            assert (mine["type"], mine["code"]) == (theirs["type"], theirs["code"]), (path, send, mine)
            assert mine["message"].replace(token_server.maker.model_id, "M") == \
                theirs["message"].replace(painter.maker.model_id, "M"), (path, send)


# -- the CLI as a child process ----------------------------------------------------------------------------


@pytest.mark.engine
async def test_the_cli_server_serves_the_graphs_client_and_stops_cleanly_on_sigterm(token_model_dir: Path) -> None:
    from r3graph.serving import shutdown_engines
    from r3graph.serving.image_server import ImageServerProcess

    shutdown_engines()
    srv = ImageServerProcess(token_model_dir, served_model_name="tiny-tokens")
    with srv:
        assert await discover_image_model(srv.base_url) == "tiny-tokens"
        async with OmniImageClient(srv.base_url, model="tiny-tokens") as client:
            png = await client.agenerate(PROMPT, ImageParams(size="64x64", seed=1))
        proc = srv._proc
    assert _png_size(png) == (64, 64)
    assert proc is not None and proc.returncode == 0, srv.log_tail()  # SIGTERM: a clean exit, not a kill
    assert "stopping the image server" in srv.log_tail()


# -- without the engine ---------------------------------------------------------------------------------------


def test_the_cli_refuses_a_directory_without_r3graph_json_before_starting_vllm(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    out = subprocess.run([sys.executable, "-m", "r3graph.cli", "image-server", "--model", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "r3graph.json missing" in out.stderr


@pytest.mark.parametrize(("change", "says"), [
    ({"kind": "text"}, "kind is 'text'"),
    ({"edit_prompt": "<bos> {instruction}"}, "must hold {source} exactly once"),
    ({"codebook_size": 10_000}, "outside the model's vocabulary"),
    ({"tokens_per_image": "64"}, "tokens_per_image (int)"),
    ({"image_tokenizer": "no_such_package.mod:Thing"}, "cannot be imported"),
    ({"generation_prompt": "<bos> <paint> {prompt} <boi>"}, "generation_prompt holds words tokenizer.json does not"),
    ({"code_token_offset": 7}, "does not read <c0>..<c63> as the code tokens 7"),
])
def test_a_bad_r3graph_json_is_a_config_error_naming_the_problem(token_model_dir: Path, tmp_path: Path,
                                                                 change: dict[str, Any], says: str) -> None:
    from r3graph.serving.token_images import TokenImageMaker

    for name in ("config.json", "tokenizer.json"):
        (tmp_path / name).write_bytes((token_model_dir / name).read_bytes())
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "palette.json").write_bytes((token_model_dir / "tokenizer" / "palette.json").read_bytes())
    meta = json.loads((token_model_dir / "r3graph.json").read_text()) | change
    (tmp_path / "r3graph.json").write_text(json.dumps(meta))
    with pytest.raises(R3ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        TokenImageMaker(tmp_path)


def test_the_server_binds_loopback_only(token_model_dir: Path) -> None:
    from r3graph.serving.image_server import TokenImageServer

    with pytest.raises(R3ConfigError, match=r"127\.0\.0\.1 only"):
        TokenImageServer(token_model_dir, host="0.0.0.0")


def test_the_grid_tokenizer_round_trips_so_the_code_checks_above_can_fail(token_model_dir: Path) -> None:
    tokenizer = GridTokenizer.load(token_model_dir / "tokenizer")
    codes = [[(3 * i + 1) % 16 for i in range(64)]]
    (image,) = tokenizer.decode(codes)
    assert image.size == (64, 64) and tokenizer.encode([image]).tolist() == codes
    out = io.BytesIO()
    image.resize((128, 128), Image.Resampling.NEAREST).save(out, format="PNG")
    assert list(_codes(out.getvalue(), tokenizer)) == codes[0]  # what the server's 4x upscale keeps
