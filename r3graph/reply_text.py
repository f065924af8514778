"""What a model's reply is made of, before anyone reads a verdict from it.

Real VLMs wrap their answer: a reasoning block first (``<think>...</think>``, with or without the
opening tag when the chat template already wrote it, or vLLM's separate ``reasoning_content``),
markdown emphasis, a fenced or loose JSON object that is cut off, single-quoted or has trailing
commas. These helpers take the wrapping off; they never raise on any text.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from langchain_core.utils.json import parse_partial_json

# Reasoning markers seen in the wild: <think> (Qwen3, DeepSeek-R1, MiMo-VL, GLM-4.1V), <thinking>,
# <reasoning>, and Kimi-VL's ◁think▷ ... ◁/think▷.
_THINK_OPEN = r"(?:<think>|<thinking>|<reasoning>|◁think▷)"
_THINK_CLOSE = r"(?:</think>|</thinking>|</reasoning>|◁/think▷)"
_THINK_BLOCK = re.compile(_THINK_OPEN + r".*?" + _THINK_CLOSE, re.DOTALL | re.IGNORECASE)
_THINK_CLOSE_RE = re.compile(_THINK_CLOSE, re.IGNORECASE)
_THINK_OPEN_RE = re.compile(_THINK_OPEN, re.IGNORECASE)
# GLM-4.1V-Thinking puts its answer in <answer>...</answer>, sometimes inside a box marker.
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
_BOX_MARKERS = re.compile(r"<\|begin_of_box\|>|<\|end_of_box\|>|\\boxed\{([^{}]*)\}")
_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)(?:```|$)", re.DOTALL)
_MARKDOWN = re.compile(r"(\*\*|__|\*|`|^#+\s*|^>\s*)", re.MULTILINE)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


@dataclass(frozen=True)
class SplitReply:
    """A reply as the answer (what stages use) and the reasoning that came before it (kept apart)."""

    answer: str
    reasoning: str = ""


def split_reasoning(text: str, reasoning_content: str | None = None) -> SplitReply:
    """The answer part of ``text``, and every reasoning block taken out of it.

    A closing tag without an opening one (Qwen3's template writes ``<think>`` into the prompt)
    means everything before it is reasoning; an opening tag never closed (cut at max_tokens while
    thinking) means there is no answer yet.
    """
    reasoning = [reasoning_content.strip()] if reasoning_content and reasoning_content.strip() else []
    for block in _THINK_BLOCK.findall(text):
        reasoning.append(_THINK_CLOSE_RE.sub("", _THINK_OPEN_RE.sub("", block)).strip())
    answer = _THINK_BLOCK.sub("", text)
    closes = list(_THINK_CLOSE_RE.finditer(answer))
    if closes:
        reasoning.append(answer[: closes[-1].start()].strip())
        answer = answer[closes[-1].end():]
    opened = _THINK_OPEN_RE.search(answer)
    if opened:
        reasoning.append(answer[opened.end():].strip())
        answer = answer[: opened.start()]
    tagged = _ANSWER_TAG.search(answer)
    if tagged:
        answer = tagged.group(1)
    answer = _BOX_MARKERS.sub(lambda m: m.group(1) or "", answer)
    return SplitReply(answer=answer.strip(), reasoning="\n".join(r for r in reasoning if r))


def strip_markdown(text: str) -> str:
    """Emphasis, code ticks, heading and quote marks removed; words untouched."""
    return _MARKDOWN.sub("", text)


def normalise(text: str) -> str:
    """Lower case, markdown and quotes gone, punctuation at the ends dropped, spaces collapsed."""
    text = strip_markdown(text).lower().replace("’", "'")
    text = re.sub(r"[\"“”«»]", "", text)
    return " ".join(text.split()).strip(" .!,;:'()[]-")


def _json_candidates(text: str) -> list[str]:
    out = [m.group(1).strip() for m in _FENCE.finditer(text) if m.group(1).strip()[:1] in "{["]
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if starts:
        out.append(text[min(starts):].strip())
    return out


def _load(candidate: str) -> Any:
    for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
        try:
            return json.JSONDecoder().raw_decode(attempt)[0]
        except ValueError:
            pass
    # Python-style: single quotes, True/False/None (what a model imitating a repr writes).
    pythonish = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", candidate)))
    end = max(pythonish.rfind("}"), pythonish.rfind("]"))
    if end >= 0:
        try:
            return ast.literal_eval(_TRAILING_COMMA.sub(r"\1", pythonish[: end + 1]))
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            pass
    try:  # cut at max_tokens: close the open string and brackets
        return parse_partial_json(candidate)
    except (ValueError, RecursionError):
        return None


def loose_json(text: str) -> Any:
    """The first JSON object or array in ``text`` (fenced or not), read leniently; None if none.

    Object keys come back lower-cased: ``{"Edit": ...}`` and ``{"edit": ...}`` read the same.
    """
    for candidate in _json_candidates(text):
        value = _load(candidate)
        if isinstance(value, dict | list):
            return _lower_keys(value)
    return None


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).strip().lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value
