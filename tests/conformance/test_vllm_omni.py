"""OmniImageClient against vllm-omni's own request handling (pinned version, see the Makefile's OMNI_VERSION).

Each server is omni_server.py in ``.venv-omni``: vllm-omni's route functions, request models and chat
handling methods, unchanged, on 127.0.0.1, with a fake engine that records what vllm-omni passed on to
the model's stages. So these tests show (a) every request the client sends is one vllm-omni accepts,
(b) the size/steps/guidance/seed the client sets reach the diffusion stage as vllm-omni reads them on
each path, (c) every reply vllm-omni builds is one the client reads, (d) its error answers become clear
typed errors, transient only where a retry can help.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from r3graph.errors import R3ConfigError, R3ModelError
from r3graph.image_generation import ImageParams
from r3graph.serving.image_client import OmniImageClient, discover_image_model
from r3graph.serving.omni_errors import status_error
from tests.conformance.omni_process import (
    BAGEL,
    QWEN_EDIT,
    diffusion_params,
    engine_calls,
    omni_python,
    omni_server,
    pinned_version,
)

PROMPT = "a red cube to the left of a blue sphere"
pytestmark = pytest.mark.slow  # starts vllm-omni's handling in subprocesses (about 30 s for the module)


@pytest.fixture(scope="module")
def bagel() -> Iterator[str]:
    """BAGEL-7B-MoT's default two-stage pipeline: thinker (AR) + DiT."""
    with omni_server("--topology", "bagel", "--model", BAGEL) as url:
        yield url


@pytest.fixture(scope="module")
def qwen_edit() -> Iterator[str]:
    """A single diffusion stage that edits one image at a time (Qwen-Image-Edit)."""
    with omni_server("--topology", "single", "--model", QWEN_EDIT, "--max-input-images", "1") as url:
        yield url


def _png(size: tuple[int, int] = (40, 30), colour: str = "white") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def _size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        return img.size


def test_the_environment_holds_the_pinned_vllm_omni() -> None:
    version = subprocess.run(
        [str(omni_python()), "-c", "import importlib.metadata as m; print(m.version('vllm-omni'))"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert version == pinned_version()


async def test_discover_reads_vllm_omnis_model_list(bagel: str) -> None:
    assert await discover_image_model(bagel) == BAGEL


# -- images API ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["bagel", "qwen_edit"])
async def test_images_generation_reaches_the_diffusion_stage(server: str, request: pytest.FixtureRequest) -> None:
    url, model = request.getfixturevalue(server), BAGEL if server == "bagel" else QWEN_EDIT
    async with OmniImageClient(url, model=model) as client:
        png = await client.agenerate(PROMPT, ImageParams(size="64x48", steps=5, guidance=4.0, seed=3))
        again = await client.agenerate(PROMPT, ImageParams(size="64x48", steps=5, guidance=4.0, seed=3))
        other = await client.agenerate(PROMPT, ImageParams(size="64x48", steps=5, guidance=4.0, seed=4))
    assert _size(png) == (64, 48) and png == again and png != other
    call = engine_calls(url)[-3]
    assert call["prompt"]["prompt"] == PROMPT
    dit = diffusion_params(call)
    assert (dit["width"], dit["height"], dit["num_inference_steps"], dit["guidance_scale"], dit["seed"]) == \
        (64, 48, 5, 4.0, 3)


@pytest.mark.parametrize("server", ["bagel", "qwen_edit"])
async def test_images_edit_sends_the_image_and_keeps_its_size(server: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(server)
    async with OmniImageClient(url) as client:
        png = await client.aedit(_png((40, 30)), "make the cube blue", ImageParams(seed=4, steps=3))
        resized = await client.aedit(_png((40, 30)), "make the cube blue", ImageParams(size="32x32"))
    assert _size(png) == (40, 30) and _size(resized) == (32, 32)  # size "auto" keeps the input's size
    call = engine_calls(url)[-2]
    assert call["prompt"]["prompt"] == "make the cube blue"
    assert "multi_modal_data" in call["prompt"], "the input image must reach the model"
    dit = diffusion_params(call)
    assert (dit["seed"], dit["num_inference_steps"]) == (4, 3)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
async def test_other_output_formats_vllm_omni_can_send_come_back_as_png(bagel: str, fmt: str) -> None:
    async with OmniImageClient(bagel, extra_body={"output_format": fmt}) as client:
        generated = await client.agenerate(PROMPT, ImageParams(size="32x24"))
        edited = await client.aedit(_png((40, 30)), "make it blue", ImageParams())
    assert _size(generated) == (32, 24) and _size(edited) == (40, 30)  # _size also checks the PNG format
    async with httpx.AsyncClient(trust_env=False) as http:
        raw = await http.post(f"{bagel}/images/generations", json={"prompt": PROMPT, "output_format": fmt})
    with Image.open(io.BytesIO(base64.b64decode(raw.json()["data"][0]["b64_json"]))) as img:
        assert img.format == fmt.upper()  # what the client converted really was not a PNG


async def test_a_bare_request_leaves_every_setting_to_the_server(bagel: str) -> None:
    async with OmniImageClient(bagel) as client:
        png = await client.agenerate(PROMPT, ImageParams())
    dit = diffusion_params(engine_calls(bagel)[-1])
    assert dit["num_inference_steps"] is None and dit["guidance_scale"] is None and _size(png) == (256, 256)


# -- chat API (BAGEL's own example path) --------------------------------------------------------------------------


async def test_chat_generation_on_bagel_passes_size_and_steps_and_reads_the_image(bagel: str) -> None:
    async with OmniImageClient(bagel, model=BAGEL, api="chat", guidance_field="cfg_text_scale") as client:
        png = await client.agenerate(PROMPT, ImageParams(size="64x48", steps=7, guidance=4.0, seed=5))
    assert _size(png) == (64, 48)
    call = engine_calls(bagel)[-1]
    assert call["prompt"]["prompt"] == PROMPT and call["prompt"]["modalities"] == ["image"]
    thinker, dit = call["stages"]
    assert (dit["width"], dit["height"], dit["num_inference_steps"]) == (64, 48, 7)
    assert dit["extra_args"]["cfg_text_scale"] == 4.0  # BAGEL's declared guidance field reaches the DiT
    # vllm-omni 0.30's multi-stage chat path: the request's seed goes to the thinker only, the DiT keeps
    # its deploy default (52 in bagel.yaml), and guidance_scale is not read (docs/image-mode.md says so).
    assert thinker["seed"] == 5 and dit["seed"] == 52


async def test_chat_guidance_scale_is_not_read_on_bagels_multi_stage_chat_path(bagel: str) -> None:
    async with OmniImageClient(bagel, api="chat") as client:
        await client.agenerate(PROMPT, ImageParams(guidance=4.0))
    assert diffusion_params(engine_calls(bagel)[-1])["guidance_scale"] is None


async def test_chat_edit_on_bagel_sends_the_image_as_img2img(bagel: str) -> None:
    async with OmniImageClient(bagel, api="chat") as client:
        png = await client.aedit(_png((40, 30), "red"), "make it blue", ImageParams(steps=3))
    call = engine_calls(bagel)[-1]
    assert call["prompt"]["modalities"] == ["img2img"]
    assert call["prompt"]["multi_modal_data"]["img2img"] == {"image": [40, 30]}
    assert diffusion_params(call)["num_inference_steps"] == 3 and _size(png) == (40, 30)


async def test_chat_on_a_single_diffusion_stage_passes_every_field(qwen_edit: str) -> None:
    async with OmniImageClient(qwen_edit, model=QWEN_EDIT, api="chat") as client:
        png = await client.aedit(_png((40, 30)), "make it blue", ImageParams(size="48x48", steps=6, guidance=2.5,
                                                                             seed=9))
    dit = diffusion_params(engine_calls(qwen_edit)[-1])
    assert (dit["width"], dit["height"], dit["num_inference_steps"], dit["guidance_scale"], dit["seed"]) == \
        (48, 48, 6, 2.5, 9)
    assert _size(png) == (48, 48)


async def test_chat_bodies_are_valid_for_vllms_own_chat_request_model() -> None:
    """The request model on the chat route is vLLM's ChatCompletionRequest (vLLM is in the main env)."""
    protocol = pytest.importorskip("vllm.entrypoints.openai.chat_completion.protocol")
    bodies: list[dict] = []
    png = _png()

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        part = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}
        message = {"role": "assistant", "content": [part]}
        return httpx.Response(200, json={"choices": [{"index": 0, "message": message}]})

    async with OmniImageClient("http://omni.test", model=BAGEL, api="chat", extra_body={"cfg_img_scale": 2.0},
                               transport=httpx.MockTransport(handler)) as client:
        await client.agenerate(PROMPT, ImageParams(size="64x64", steps=4, guidance=3.0, seed=1))
        await client.aedit(png, "make it blue", ImageParams())
    for body in bodies:
        parsed = protocol.ChatCompletionRequest.model_validate(body)
        assert parsed.model == BAGEL and parsed.model_extra["modalities"] == ["image"]
    assert protocol.ChatCompletionRequest.model_validate(bodies[0]).seed == 1
    assert {"size", "num_inference_steps", "guidance_scale", "cfg_img_scale"} <= set(
        protocol.ChatCompletionRequest.model_validate(bodies[0]).model_extra)


# -- capability and error answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["images", "chat"])
async def test_a_model_mismatch_is_permanent_and_names_the_served_model(bagel: str, api: str) -> None:
    async with OmniImageClient(bagel, model="Qwen/Qwen-Image", api=api) as client:
        with pytest.raises(R3ModelError) as err:
            await client.agenerate(PROMPT, ImageParams())
    assert not err.value.transient and f"pass model='{BAGEL}'" in str(err.value)
    assert ("HTTP 400" if api == "images" else "HTTP 404") in str(err.value)


@pytest.mark.parametrize(("path", "send"), [
    ("images/generations", {"json": {"prompt": PROMPT, "response_format": "url"}}),
    ("images/edits", {"data": {"prompt": "x", "response_format": "url"}, "files": {"image": ("i.png", _png())}}),
])
def test_response_formats_other_than_b64_json_are_refused_and_mapped_permanent(bagel: str, path: str,
                                                                              send: dict) -> None:
    resp = httpx.post(f"{bagel}/{path}", trust_env=False, **send)
    assert resp.status_code == 400  # what vllm-omni answers; the client itself always asks for b64_json
    error = status_error("POST", f"{bagel}/{path}", resp)
    assert not error.transient and "b64_json" in str(error)


@pytest.mark.parametrize("api", ["images", "chat"])
async def test_more_input_images_than_the_model_takes_is_permanent(qwen_edit: str, api: str) -> None:
    async with OmniImageClient(qwen_edit, api=api) as client:
        with pytest.raises(R3ModelError, match="fewer input images") as err:
            await client.aedit([_png(), _png((20, 20))], "combine them", ImageParams())
    assert not err.value.transient and "HTTP 400" in str(err.value)


async def test_values_vllm_omni_would_refuse_fail_before_any_call() -> None:
    with pytest.raises(ValueError, match="less than or equal to 200"):
        ImageParams(steps=201)
    with pytest.raises(ValueError, match="less than or equal to 20"):
        ImageParams(guidance=20.5)
    with pytest.raises(R3ConfigError, match="modalities"):
        OmniImageClient("http://x", api="chat", extra_body={"modalities": ["text"]})


@pytest.mark.parametrize("api", ["images", "chat"])
async def test_a_server_without_a_diffusion_stage_is_a_permanent_error(api: str) -> None:
    with omni_server("--topology", "no-diffusion", "--model", "Qwen/Qwen2.5-VL-7B-Instruct") as url:
        async with OmniImageClient(url, api=api) as client:
            with pytest.raises(R3ModelError) as err:
                await client.agenerate(PROMPT, ImageParams())
    assert not err.value.transient
    expected = "HTTP 503: No diffusion stage found" if api == "images" else "HTTP 400: Unsupported output modalities"
    assert expected in str(err.value) and "--omni" in str(err.value)


@pytest.mark.parametrize("api", ["images", "chat"])
@pytest.mark.parametrize(("flag", "says", "transient"), [
    ("--fail", "HTTP 500", True),  # EngineGenerateError: vLLM calls it recoverable
    ("--empty", "holds no image", False),  # the diffusion stage finished without an image
])
async def test_engine_outcomes_map_to_typed_errors(api: str, flag: str, says: str, transient: bool) -> None:
    with omni_server("--topology", "bagel", "--model", BAGEL, flag) as url:
        async with OmniImageClient(url, api=api) as client:
            with pytest.raises(R3ModelError, match=says) as err:
                await client.agenerate(PROMPT, ImageParams())
    assert err.value.transient is transient
