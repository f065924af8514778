"""A scripted chat model for unit tests: replies come from a function of the prompt text, every call
is recorded, and an optional delay lets tests observe concurrency."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL import Image
from pydantic import ConfigDict, Field

from r3graph.messages import text_and_images


def prompt_text(messages: list[BaseMessage]) -> str:
    return text_and_images(messages)[0]


class ScriptedChatModel(BaseChatModel):
    """``script(prompt_text) -> reply``; raises if the script does. Records (prompt, kwargs)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    script: Callable[..., str]
    # When True the script is called as script(prompt_text, images): the PNG/JPEG bytes of the
    # request's image parts, for fakes that answer from what they are shown.
    sees_images: bool = False
    delay_s: float = 0.0
    model_name: str = "scripted"
    calls: list[dict[str, Any]] = Field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        text = prompt_text(messages)
        self.calls.append({"prompt": text, "kwargs": kwargs, "messages": messages, "t": time.monotonic()})
        reply = self.script(text, text_and_images(messages)[1]) if self.sees_images else self.script(text)
        message = AIMessage(
            content=reply,
            usage_metadata={
                "input_tokens": len(text.split()) + 16,
                "output_tokens": len(reply.split()),
                "total_tokens": len(text.split()) + 16 + len(reply.split()),
                "input_token_details": {"cache_read": 16},
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._reply(messages, kwargs)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return self._reply(messages, kwargs)
        finally:
            self.in_flight -= 1

    def stages(self) -> list[str]:
        """The stage of each call, read from the default pack's distinctive phrases."""
        return [stage_of(c["prompt"]) for c in self.calls]


def stage_of(prompt: str) -> str:
    if "yes/no questions" in prompt:
        return "questions"
    if prompt.startswith("Look at the image and answer"):
        return "answer"
    if "Is this claim true?" in prompt:
        return "verify"
    if "ONE concrete edit instruction that fixes the most important error" in prompt:
        return "judge"
    if "List the separate factual claims" in prompt:
        return "claims"
    if "Checks of the draft against the image" in prompt:
        return "summarise"
    if "A check of that answer against the image found" in prompt:
        return "refine"
    if "Write an improved answer to the task." in prompt:
        return "refine_blind"
    return "reason"


def png_bytes(colour: str = "red", size: tuple[int, int] = (32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(colour: str = "red") -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(colour)).decode()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def text_packed_png(chunks: int = 60, inflated: int = 1_000_000) -> bytes:
    """A 16x16 PNG under 64 KiB whose zTXt chunks inflate to ``chunks`` x ``inflated`` bytes (0.3 s of
    CPU for the defaults): small by its bytes and pixels, heavy to open."""
    plain = png_bytes(size=(16, 16))
    body = b"Comment\x00\x00" + zlib.compress(b"\x00" * inflated, 9)
    return plain[:33] + b"".join(png_chunk(b"zTXt", body) for _ in range(chunks)) + plain[33:]
