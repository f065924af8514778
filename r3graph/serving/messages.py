"""LangChain messages -> vLLM chat conversation (OpenAI-style dicts with decoded PIL images).

Why decode here: images arrive as OpenAI ``image_url`` parts, LangChain standard ``image`` blocks
(v0 ``source_type`` and v1 ``base64``/``url`` forms) or local paths. Decoding them to PIL once and
handing vLLM ``image_pil`` parts keeps vLLM from fetching anything (no network) and lets its chat
renderer apply the model's own chat template and image placeholders.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from PIL import Image


class UnsupportedContentError(ValueError):
    pass


def _open_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()  # decode now: a lazy PIL file would be decoded again in another thread
    return img.convert("RGB") if img.mode not in ("RGB", "L") else img


def _from_base64(data: str) -> Image.Image:
    try:
        return _open_image(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError) as e:
        raise UnsupportedContentError(f"invalid base64 image data: {e}") from e


def image_from_url(url: str) -> Image.Image:
    """Decode a ``data:`` URL, a ``file://`` URL or a local path. Remote URLs are refused."""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if ";base64" not in header:
            return _open_image(unquote(payload).encode("latin-1"))
        return _from_base64(payload)
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        raise UnsupportedContentError("remote image URLs are not fetched; pass a data: URL or a path")
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(url)
    return _open_image(path.read_bytes())


def image_from_block(block: dict[str, Any]) -> Image.Image:
    """Decode any image content block form LangChain or OpenAI produce."""
    if isinstance(block.get("image"), Image.Image):
        return block["image"]
    if block.get("type") == "image_url":
        ref = block["image_url"]
        return image_from_url(ref["url"] if isinstance(ref, dict) else ref)
    if "base64" in block:  # LangChain v1 standard block
        return _from_base64(block["base64"])
    source_type = block.get("source_type")
    if source_type == "base64":  # LangChain v0 standard block
        return _from_base64(block["data"])
    if isinstance(block.get("source"), dict) and block["source"].get("type") == "base64":
        return _from_base64(block["source"]["data"])  # Anthropic-style block
    for key in ("url", "path"):
        if isinstance(block.get(key), str):
            return image_from_url(block[key])
    raise UnsupportedContentError(f"cannot decode image block with keys {sorted(block)}")


def _is_image_block(block: dict[str, Any]) -> bool:
    return block.get("type") in ("image", "image_url") or isinstance(block.get("image"), Image.Image)


def _content(content: str | list[Any]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
        elif block.get("type") == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif _is_image_block(block):
            parts.append({"type": "image_pil", "image_pil": image_from_block(block)})
        else:
            raise UnsupportedContentError(f"unsupported content block type {block.get('type')!r}")
    # Text-only lists become one string: templates handle strings, not all handle part lists.
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _role(msg: BaseMessage) -> str:
    if isinstance(msg, SystemMessage):
        return "system"
    if isinstance(msg, HumanMessage):
        return "user"
    if isinstance(msg, AIMessage):
        return "assistant"
    if isinstance(msg, ToolMessage):
        return "tool"
    if isinstance(msg, ChatMessage):
        return msg.role
    raise UnsupportedContentError(f"unsupported message type {type(msg).__name__}")


def to_vllm_conversation(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    return [{"role": _role(m), "content": _content(m.content)} for m in messages]


def count_images(conversation: list[dict[str, Any]]) -> int:
    return sum(
        1
        for m in conversation
        if isinstance(m["content"], list)
        for p in m["content"]
        if p["type"] == "image_pil"
    )
