"""The fake engine behind vllm-omni's handlers in omni_server.py: AsyncOmni's surface, painting instead of a model.

What vllm-omni passes on (the prompt dict, each stage's sampling params) is recorded, so the tests can
see which of the client's fields reached which stage; the image is a function of what reached the
diffusion stage, so the same request gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import vllm_stand_ins as vllm
from PIL import Image

# -- stand-ins for torch and vLLM's SamplingParams (only their names and attributes are touched) --------
TORCH_STAND_IN = types.SimpleNamespace(Generator=type("Generator", (), {}), Tensor=type("Tensor", (), {}),
                               dtype=type("dtype", (), {}))


@dataclass
class SamplingParams:
    """vLLM's AR SamplingParams: the fields vllm-omni's chat path sets on the thinker stage."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    min_tokens: int | None = None
    seed: int | None = None
    ignore_eos: bool | None = None
    stop: Any = None
    stop_token_ids: Any = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    detokenize: bool = True
    extra_args: dict[str, Any] | None = None
    output_kind: str = "CUMULATIVE"
    skip_clone: bool = False

    def clone(self) -> SamplingParams:
        return SamplingParams(**{k: getattr(self, k) for k in self.__dataclass_fields__})


REQUEST_OUTPUT_KIND = types.SimpleNamespace(DELTA="DELTA", FINAL_ONLY="FINAL_ONLY", CUMULATIVE="CUMULATIVE")


# -- the fake engine ---------------------------------------------------------------------------------------
@dataclass
class Stage:
    stage_type: str  # "llm" or "diffusion", as vllm-omni's get_stage_type reads it
    final_output_type: str
    is_comprehension: bool = False


TOPOLOGIES: dict[str, list[Stage]] = {
    # vllm_omni/model_executor/models/bagel/pipeline.py BAGEL_PIPELINE: thinker (AR, text) + DiT (image)
    "bagel": [Stage("llm", "text", is_comprehension=True), Stage("diffusion", "image")],
    # Qwen-Image-Edit and bagel_single_stage: one diffusion stage
    "single": [Stage("diffusion", "image")],
    # a text-only model served with --omni: no diffusion stage to generate with
    "no-diffusion": [Stage("llm", "text", is_comprehension=True)],
}


@dataclass
class FakeOutput:
    """What AsyncOmni.generate yields: vllm_omni.outputs.OmniRequestOutput's fields the handlers read."""

    images: list[Image.Image]
    final_output_type: str
    stage_id: int | None
    prompt: Any
    finished: bool = True
    outputs: list[Any] = field(default_factory=list)
    stage_durations: dict[str, float] = field(default_factory=lambda: {"fake": 0.0})
    peak_memory_mb: float = 0.0
    metrics: dict[str, Any] | None = None
    multimodal_output: dict[str, Any] | None = None


class FakeEngine:
    """AsyncOmni for the handlers: stage configs, defaults, od_config, and generate() that paints.

    The image is a function of what reached the diffusion stage (prompt text, input image, seed, size),
    so the same request gives the same bytes and a client can see which of its fields arrived."""

    def __init__(self, topology: str, model: str, max_input_images: int | None, fail: bool, params_cls: type) -> None:
        self.stage_configs = TOPOLOGIES[topology]
        self.output_modalities = [s.final_output_type for s in self.stage_configs]
        self.model = model
        self.fail = fail
        self.empty = False  # finish the diffusion stage without an image (as a failed safety filter does)
        self.errored = False
        self.calls: list[dict[str, Any]] = []
        self.default_sampling_params_list: list[Any] = [
            SamplingParams(temperature=0.4, max_tokens=2048, seed=52) if s.stage_type == "llm" else params_cls(seed=52)
            for s in self.stage_configs  # seeds as in vllm_omni/deploy/bagel.yaml
        ]
        self.od_config = types.SimpleNamespace(
            model_class_name="BagelPipeline" if topology == "bagel" else "QwenImageEditPipeline",
            supports_multimodal_inputs=max_input_images is None or max_input_images > 1,
            max_multimodal_image_inputs=max_input_images,
        )

    def get_diffusion_od_config(self) -> Any:
        return self.od_config

    async def get_tokenizer(self) -> None:
        return None

    async def check_health(self) -> None:
        return None

    async def generate(self, prompt: Any = None, sampling_params_list: list[Any] | None = None,
                       sampling_params: Any = None, request_id: str | None = None,
                       **_: Any) -> AsyncIterator[FakeOutput]:
        if isinstance(prompt, list):
            prompt = prompt[0]
        params_list = list(sampling_params_list or [sampling_params])
        diffusion = next((p for p, s in zip(params_list, self.stage_configs, strict=False)
                          if s.stage_type == "diffusion"), params_list[-1])
        record = {"request_id": request_id, "prompt": _describe(prompt),
                  "stages": [_describe(vars(p)) for p in params_list]}
        self.calls.append(record)
        if self.fail:
            raise vllm.EngineGenerateError("fake engine: generation failed")
        images = [] if self.empty else [_paint(prompt, diffusion)]
        for stage_id, stage in enumerate(self.stage_configs):
            if stage.final_output_type == "image":
                yield FakeOutput(images, "image", stage_id, prompt)
            else:  # the thinker's text output, which an image request filters out
                yield FakeOutput([], "text", stage_id, prompt, multimodal_output={"text": "thinking"})


def _input_image(prompt: Any) -> Image.Image | None:
    data = prompt.get("multi_modal_data") if isinstance(prompt, dict) else None
    if not data:
        return None
    image = next(iter(data.values()))
    image = image[0] if isinstance(image, list) else image
    return image if isinstance(image, Image.Image) else None


def _paint(prompt: Any, params: Any) -> Image.Image:
    text = prompt.get("prompt", "") if isinstance(prompt, dict) else str(prompt)
    source = _input_image(prompt)
    width = getattr(params, "width", None) or (source.size[0] if source else 256)
    height = getattr(params, "height", None) or (source.size[1] if source else 256)
    digest = hashlib.sha256(json.dumps([text, getattr(params, "seed", None),
                                        source.tobytes().hex()[:64] if source else None]).encode()).digest()
    return Image.new("RGB", (int(width), int(height)), tuple(digest[:3]))


def _describe(value: Any) -> Any:
    """JSON-able view of a prompt or params (images as their size)."""
    if isinstance(value, Image.Image):
        return {"image": list(value.size)}
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items() if k not in ("modules", "generator")}
    if isinstance(value, list | tuple):
        return [_describe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)
