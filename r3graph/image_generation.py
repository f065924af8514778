"""The image-generation side of output mode ``image``: one protocol, and the per-request parameters.

A backend turns text into an image and edits an image with an instruction. r3graph ships a client
for vllm-omni's OpenAI-style image API (:class:`r3graph.serving.image_client.OmniImageClient`);
anything with these two coroutines works (a diffusers pipeline in-process, another HTTP API).
Images travel as PNG bytes: they go straight into the result, the trajectory and the judge's
``data:`` URL without a decode/encode round trip.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

SIZE_PATTERN = re.compile(r"^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$")


class ImageParams(BaseModel):
    """Generation settings for one request (``R3Context(image=ImageParams(...))``).

    ``None`` leaves a setting to the server. Names follow vllm-omni's request fields where they
    differ: ``steps`` is sent as ``num_inference_steps`` and ``guidance`` as ``guidance_scale``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: str | None = Field(default=None, description="'WIDTHxHEIGHT', e.g. '512x512'.")
    steps: int | None = Field(default=None, ge=1, le=1000, description="Diffusion steps.")
    guidance: float | None = Field(default=None, ge=0.0, le=100.0, description="Classifier-free guidance.")
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1, description="Same seed + same prompt = same image.")
    plan: bool = Field(
        default=False,
        description="Reason first asks the chat model for a detailed generation prompt (the paper's "
        "<think> plan), then generates from it; False generates from the instruction as given.",
    )

    @field_validator("size")
    @classmethod
    def _size_format(cls, value: str | None) -> str | None:
        if value is not None and not SIZE_PATTERN.match(value):
            raise ValueError("size must look like '512x512' (width x height in pixels)")
        return value


@runtime_checkable
class ImageBackend(Protocol):
    """Generate an image from text; edit an image with one instruction. Both return PNG bytes.

    Raise :class:`r3graph.errors.R3ModelError` with ``transient=True`` when another attempt can help
    (timeouts, 5xx, dropped connections): the graph's RetryPolicy retries exactly those. The graph
    bounds every call by ``call_timeout_s`` and the run's deadline (it cancels the coroutine), so a
    backend needs no timeout argument.
    """

    #: Shown in spans as ``gen_ai.request.model``.
    model: str

    async def agenerate(self, prompt: str, params: ImageParams) -> bytes: ...

    async def aedit(self, image: bytes, instruction: str, params: ImageParams) -> bytes: ...
