"""One place where r3graph talks to the image generator (output mode ``image``).

The image-side twin of :class:`r3graph.calls.StageCaller`: the same per-call timeout and run
deadline, the same :class:`R3ModelError` with a ``transient`` flag for the RetryPolicy, a GenAI span
per call with ``gen_ai.output.type=image``. What the generator returns is checked like an input
image (decodable, within ``max_image_bytes``/``max_image_pixels``) before the judge sees it, so a
broken reply fails in the stage that received it and not inside the chat model's server.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from r3graph.calls import bounded_call
from r3graph.context import R3Context
from r3graph.errors import R3InputError, R3ModelError
from r3graph.image_decode import checked_png, is_small_png
from r3graph.image_generation import ImageBackend
from r3graph.image_worker import run_in_worker
from r3graph.state import Usage
from r3graph.tracing import tracer

# Not in the GenAI semantic conventions (yet): the API operation, as vllm-omni/OpenAI name it.
GENERATE, EDIT = "images.generate", "images.edit"


@dataclass
class ImageCaller:
    """Generate and edit images for one run."""

    backend: ImageBackend
    context: R3Context
    deadline: float | None = None
    usage: Usage = field(default_factory=Usage)

    async def generate(self, stage: str, prompt: str, *, sample: int = 0) -> bytes:
        """``sample`` > 0 asks for another sample of the same prompt: a seeded request moves its seed
        by that much, or it would return the same image again."""
        params = self.context.image
        if sample and params.seed is not None:
            params = params.model_copy(update={"seed": params.seed + sample})
        with self._span(stage, GENERATE, prompt) as span:
            png = await bounded_call(stage, self.backend.agenerate(prompt, params),
                                     self.context, self.deadline)
            return await self._checked(stage, png, span)

    async def edit(self, stage: str, image: bytes, instruction: str) -> bytes:
        params = self.context.image
        with self._span(stage, EDIT, instruction) as span:
            span.set_attribute("r3.image.input_bytes", len(image))
            png = await bounded_call(stage, self.backend.aedit(image, instruction, params),
                                     self.context, self.deadline)
            return await self._checked(stage, png, span)

    async def _checked(self, stage: str, png: Any, span: Any) -> bytes:
        if not isinstance(png, bytes):
            raise R3ModelError(f"{stage}: the image backend returned {type(png).__name__}, not PNG bytes",
                               stage=stage)
        label = f"{stage}: generated image"
        checks = (png, self.context.max_image_bytes, self.context.max_image_pixels, label)
        try:  # never on the event loop: a small PNG in a thread (bounded work), anything else in a worker
            if is_small_png(png):
                png, width, height = await asyncio.to_thread(checked_png, *checks)
            else:
                png, width, height = await run_in_worker(checked_png, *checks, timeout_s=self.context.image_timeout_s,
                                                         label=label, budget="image_timeout_s")
        except R3InputError as exc:
            raise R3ModelError(str(exc), stage=stage) from exc
        span.set_attributes({"r3.image.bytes": len(png), "r3.image.width": width, "r3.image.height": height,
                             "r3.image.sha256": hashlib.sha256(png).hexdigest()[:16]})
        self.usage += Usage(image_calls=1)
        return png

    def _span(self, stage: str, operation: str, text: str) -> Any:
        params = self.context.image
        attributes: dict[str, Any] = {
            gen_ai.GEN_AI_OPERATION_NAME: operation,
            gen_ai.GEN_AI_REQUEST_MODEL: self.backend.model or type(self.backend).__name__,
            gen_ai.GEN_AI_OUTPUT_TYPE: gen_ai.GenAiOutputTypeValues.IMAGE.value,
            "r3.stage": stage,
        }
        for key, value in (("size", params.size), ("steps", params.steps), ("guidance", params.guidance),
                           ("seed", params.seed)):
            if value is not None:
                attributes[f"r3.image.{key}"] = value
        if self.context.content_capture():
            attributes["r3.image.prompt"] = text
        return tracer().start_as_current_span(f"{operation} {attributes[gen_ai.GEN_AI_REQUEST_MODEL]}",
                                              attributes=attributes)
