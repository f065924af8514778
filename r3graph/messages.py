"""How every stage's request is laid out.

System text first, then the images, then the stage's own text: everything the stages share comes
first so that a prefix cache (vLLM's) can reuse the image's KV across reason, reflect and refine.
Images travel as OpenAI-style ``image_url`` parts with ``data:`` URLs, which vLLM's chat path, the
OpenAI-compatible server and r3graph's in-process engine all accept.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from r3graph.prompts import PromptPack


def text_and_images(messages: list[BaseMessage]) -> tuple[str, list[bytes]]:
    """The text and the data-URL images (decoded bytes) of the last message: what a scripted model or
    an oracle answers from."""
    content = messages[-1].content
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if url.startswith("data:") and "," in url:
                images.append(base64.b64decode(url.split(",", 1)[1]))
    return "".join(texts), images


def image_part(data_url: str) -> dict[str, object]:
    return {"type": "image_url", "image_url": {"url": data_url}}


def stage_messages(pack: PromptPack, image_urls: Sequence[str], text: str) -> list[BaseMessage]:
    content: list[str | dict[str, object]] = [image_part(url) for url in image_urls]
    content.append({"type": "text", "text": text})
    messages: list[BaseMessage] = []
    if pack.system:
        messages.append(SystemMessage(content=pack.system))
    messages.append(HumanMessage(content=content))
    return messages
