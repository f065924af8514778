"""OmniImageClient against the scene-world stand-in image server, over real HTTP on 127.0.0.1.

Malformed replies a correct server never sends are served by an httpx MockTransport instead.
"""

from __future__ import annotations

import base64
import io
import json
import random
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from PIL import Image

from r3graph.errors import R3ModelError
from r3graph.image_generation import ImageParams
from r3graph.serving.image_client import OmniImageClient, discover_image_model
from r3graph_scenes import score_caption
from r3graph_scenes.image_edits import image_edit
from r3graph_scenes.paint_server import MODEL_ID, PaintServer
from r3graph_scenes.painter import decode_scene, encode_png, layout

PROMPT = "a large red circle and a small blue square . the red circle is left of the blue square ."


@pytest.fixture(scope="module")
def painter() -> Iterator[PaintServer]:
    with PaintServer(error_rate=0.0, seed=0) as server:
        yield server


def _png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        return img.size


async def test_generation_paints_the_prompt_at_the_requested_size(painter: PaintServer) -> None:
    async with OmniImageClient(painter.url, model=MODEL_ID) as client:
        png = await client.agenerate(PROMPT, ImageParams(size="128x128", seed=1, steps=4, guidance=2.0))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and _png_size(png) == (128, 128)
    scene = decode_scene(png)
    assert scene is not None and score_caption(PROMPT, scene).exact_match


async def test_same_seed_same_bytes(painter: PaintServer) -> None:
    async with OmniImageClient(painter.url) as client:
        first = await client.agenerate(PROMPT, ImageParams(seed=7))
        again = await client.agenerate(PROMPT, ImageParams(seed=7))
        other = await client.agenerate(PROMPT, ImageParams(seed=8))
    assert first == again
    assert other != first


@pytest.mark.parametrize("api", ["images", "chat"])
async def test_a_mistaken_painting_is_repaired_by_the_judges_edits(api: str) -> None:
    target = layout(PROMPT, random.Random(0))  # supplies the sizes image_edit needs
    with PaintServer(error_rate=1.0, seed=3) as server:
        async with OmniImageClient(server.url, api=api) as client:
            png = await client.agenerate(PROMPT, ImageParams(seed=1))
            painted = decode_scene(png)
            assert painted is not None and not score_caption(PROMPT, painted).exact_match
            for _ in range(3):
                edit = image_edit(PROMPT, painted, target)
                if edit is None:
                    break
                png = await client.aedit(png, edit, ImageParams(seed=1))
                painted = decode_scene(png)
                assert painted is not None
        assert server.counts["mistakes"] == 1 and server.counts["edits"] >= 1
    assert score_caption(PROMPT, painted).exact_match
    assert _png_size(png) == (256, 256)  # an edit keeps the input's size


async def test_editing_a_foreign_png_is_a_permanent_error_with_the_servers_message(painter: PaintServer) -> None:
    plain = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(plain, format="PNG")
    async with OmniImageClient(painter.url) as client:
        with pytest.raises(R3ModelError) as err:
            await client.aedit(plain.getvalue(), "add a small red circle", ImageParams())
    assert not err.value.transient
    assert "not an image this stand-in painted" in str(err.value)
    assert "400" in str(err.value) and f"{painter.url}/images/edits" in str(err.value)


@pytest.mark.parametrize("api", ["images", "chat"])
async def test_the_stand_in_refuses_another_model_as_vllm_omni_does(painter: PaintServer, api: str) -> None:
    async with OmniImageClient(painter.url, model="ByteDance-Seed/BAGEL-7B-MoT", api=api) as client:
        with pytest.raises(R3ModelError, match=f"pass model='{MODEL_ID}'") as err:
            await client.agenerate(PROMPT, ImageParams())
    assert not err.value.transient


async def test_the_stand_in_chat_path_paints_what_the_images_path_paints(painter: PaintServer) -> None:
    async with OmniImageClient(painter.url) as images, OmniImageClient(painter.url, api="chat") as chat:
        assert await chat.agenerate(PROMPT, ImageParams(seed=5, size="64x64")) == \
            await images.agenerate(PROMPT, ImageParams(seed=5, size="64x64"))


@pytest.mark.parametrize(("prompt", "params", "says"), [
    (PROMPT, ImageParams(size="256x128"), "square"),
    ("a cat on a mat", ImageParams(), "cannot paint"),
])
async def test_bad_requests_are_permanent(painter: PaintServer, prompt: str, params: ImageParams, says: str) -> None:
    async with OmniImageClient(painter.url) as client:
        with pytest.raises(R3ModelError, match=says) as err:
            await client.agenerate(prompt, params)
    assert not err.value.transient


async def test_unreachable_server_is_transient() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with OmniImageClient(f"http://127.0.0.1:{port}", timeout=5) as client:
        with pytest.raises(R3ModelError) as err:
            await client.agenerate(PROMPT, ImageParams())
    assert err.value.transient and str(port) in str(err.value)


async def test_a_slow_server_times_out_quickly_and_transiently() -> None:
    with PaintServer(error_rate=0.0, delay_s=30.0) as server:
        async with OmniImageClient(server.url, timeout=0.5) as client:
            started = time.monotonic()
            with pytest.raises(R3ModelError, match=r"timed out|Timeout") as err:
                await client.agenerate(PROMPT, ImageParams())
            assert time.monotonic() - started < 3.0
        assert err.value.transient


async def test_requests_carry_the_current_trace_context(painter: PaintServer, spans: object) -> None:
    async with OmniImageClient(painter.url) as client:
        await client.agenerate(PROMPT, ImageParams(seed=1))
        untraced = {k.lower(): v for k, v in painter.requests[-1].headers.items()}
        with trace.get_tracer("test").start_as_current_span("generate image") as span:
            await client.agenerate(PROMPT, ImageParams(seed=1))
        traced = {k.lower(): v for k, v in painter.requests[-1].headers.items()}
    assert "traceparent" not in untraced
    context = span.get_span_context()
    assert traced["traceparent"] == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


async def test_discover_image_model(painter: PaintServer) -> None:
    assert await discover_image_model(painter.url) == MODEL_ID
    assert await discover_image_model(painter.url.removesuffix("/v1")) == MODEL_ID


# -- what goes on the wire, and replies only a broken server sends (MockTransport) ---------------------


def _mocked(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> OmniImageClient:
    return OmniImageClient("http://image.test/v1", transport=httpx.MockTransport(handler), **kwargs)


def _reply(data: object) -> httpx.Response:
    return httpx.Response(200, json={"created": 0, "data": data})


async def test_generation_sends_only_the_fields_that_are_set() -> None:
    seen: list[httpx.Request] = []
    png = encode_png(layout(PROMPT, random.Random(0)), 64)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _reply([{"b64_json": base64.b64encode(png).decode()}])

    async with _mocked(handler, model="bagel", api_key="k") as client:
        assert await client.agenerate("p", ImageParams(size="64x64", steps=9, guidance=3.5, seed=2)) == png
        await client.agenerate("p", ImageParams())
        assert await client.aedit(png, "remove the blue square", ImageParams(seed=4)) == png
    full, bare = json.loads(seen[0].content), json.loads(seen[1].content)
    assert str(seen[0].url) == "http://image.test/v1/images/generations"
    assert full == {"prompt": "p", "model": "bagel", "n": 1, "response_format": "b64_json", "size": "64x64",
                    "seed": 2, "num_inference_steps": 9, "guidance_scale": 3.5}
    assert bare == {"prompt": "p", "model": "bagel", "n": 1, "response_format": "b64_json"}
    assert seen[0].headers["authorization"] == "Bearer k"
    edit = seen[2]
    assert str(edit.url) == "http://image.test/v1/images/edits"
    assert edit.headers["content-type"].startswith("multipart/form-data")
    body = edit.content
    assert b'name="prompt"\r\n\r\nremove the blue square' in body and b'name="seed"\r\n\r\n4' in body
    assert b'name="image"; filename="image.png"' in body and png in body


async def test_a_jpeg_reply_comes_back_as_png() -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(jpeg, format="JPEG")
    async with _mocked(lambda _: _reply([{"b64_json": base64.b64encode(jpeg.getvalue()).decode()}])) as client:
        png = await client.agenerate("p", ImageParams())
    assert _png_size(png) == (16, 16)


@pytest.mark.parametrize("data", [[], None, [{"url": "http://x/y.png"}], [{"b64_json": "not base64!"}],
                                  [{"b64_json": base64.b64encode(b"plain text, no image").decode()}]])
async def test_malformed_replies_are_permanent_errors(data: object) -> None:
    async with _mocked(lambda _: _reply(data)) as client:
        with pytest.raises(R3ModelError, match=r"malformed|not readable|holds no image") as err:
            await client.agenerate("p", ImageParams())
    assert not err.value.transient


@pytest.mark.parametrize(("status", "transient"), [(503, True), (429, True), (500, True), (401, False), (422, False)])
async def test_status_codes_map_to_transient_or_not(status: int, transient: bool) -> None:
    reply = httpx.Response(status, json={"error": {"message": f"scripted {status}", "type": "x", "code": status}})
    async with _mocked(lambda _: reply) as client:
        with pytest.raises(R3ModelError, match=f"HTTP {status}: scripted {status}") as err:
            await client.agenerate("p", ImageParams())
    assert err.value.transient is transient


# -- the stand-in server itself ------------------------------------------------------------------------


def test_server_says_it_is_a_stand_in_and_answers_errors_openai_style(painter: PaintServer) -> None:
    with httpx.Client(trust_env=False) as http:
        models = http.get(f"{painter.url}/models").json()
        assert models["data"][0]["id"] == MODEL_ID and "stand-in" in models["notice"]
        assert "not a model" in models["data"][0]["notice"]
        missing = http.get(f"{painter.url}/images/nothing")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        url_format = http.post(f"{painter.url}/images/generations", json={"prompt": PROMPT, "response_format": "url"})
        assert url_format.status_code == 400 and "b64_json" in url_format.json()["error"]["message"]
        no_prompt = http.post(f"{painter.url}/images/generations", json={"size": "64x64"})
        assert no_prompt.status_code == 400 and "prompt" in no_prompt.json()["error"]["message"]
    with socket.create_connection(("127.0.0.1", painter.port), timeout=5) as sock:  # announce 9 MB, send none
        sock.sendall(b"POST /v1/images/edits HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 413")


def test_server_binds_loopback_only() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        PaintServer(host="0.0.0.0")
