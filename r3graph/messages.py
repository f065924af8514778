"""How every stage's request is laid out.

System text first, then the images, then the stage's own text: everything the stages share comes
first so that a prefix cache (vLLM's) can reuse the image's KV across reason, reflect and refine.
Images travel as OpenAI-style ``image_url`` parts with ``data:`` URLs, which vLLM's chat path, the
OpenAI-compatible server and r3graph's in-process engine all accept.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from r3graph.prompts import PromptPack


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
