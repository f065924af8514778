"""Lenient parsers for what models write back: lists of lines and judge verdicts.

Models (tiny ones especially) number their lists, add bullets, wrap JSON in code fences or answer in
free text. These parsers never raise on any text; they return what they can recover.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, Field, ValidationError

_BULLET = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.):]|q\d*[.:)]|question\s*\d*[.:)])\s*", re.IGNORECASE)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class JudgeVerdict(BaseModel):
    """The judge's structured verdict: one edit instruction, or the sentinel."""

    edit: str = Field(description='One concrete edit instruction, or "no further edit needed".')


def parse_lines(text: str, limit: int) -> list[str]:
    """Non-empty lines with bullets/numbering removed, duplicates dropped, at most ``limit``."""
    seen: set[str] = set()
    items: list[str] = []
    for line in text.splitlines():
        item = _BULLET.sub("", line).strip().strip('"').strip()
        key = " ".join(item.lower().split())
        if len(key) < 3 or key in seen:
            continue
        seen.add(key)
        items.append(item)
        if len(items) >= limit:
            break
    return items


def parse_judge_text(text: str) -> str:
    """The edit instruction (or sentinel) in a free-text judge reply; JSON is read when present."""
    match = _JSON_OBJECT.search(text)
    if match:
        try:
            data = json.loads(match.group(0))
            verdict = JudgeVerdict.model_validate(data)
            return verdict.edit.strip()
        except (json.JSONDecodeError, ValidationError, TypeError):
            pass
    cleaned = text.strip().strip("`").strip()
    for prefix in ("edit:", "edit instruction:", "instruction:"):
        if cleaned.lower().startswith(prefix):
            cleaned = cleaned[len(prefix) :].strip()
    return cleaned.strip('"').strip()
