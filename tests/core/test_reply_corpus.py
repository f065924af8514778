"""Every reply in the corpus (tests/data/replies, built from how real VLM families write; sources in
SOURCES.md) is read as a person would read it: yes/no/unclear, pass/edit/unclear, the listed items."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from r3graph import load_pack
from r3graph.reflect.verdicts import read_items, read_judge, read_yes_no
from r3graph.reply_text import normalise

CORPUS = Path(__file__).parents[1] / "data" / "replies"
PASSES = load_pack("default").accepted_passes


def _records(kind: str) -> list[Any]:
    """The corpus, then the held-out replies (written after the reader, see SOURCES.md)."""
    out = []
    for where in (CORPUS, CORPUS / "heldout"):
        lines = (where / f"{kind}.jsonl").read_text(encoding="utf-8").splitlines()
        out += [pytest.param(json.loads(line), id=f"{where.name}-{kind}-{i}") for i, line in enumerate(lines)]
    return out


def test_the_corpus_has_at_least_150_replies_per_kind() -> None:
    for kind in ("yes_no", "judge", "lists"):
        assert len(_records(kind)) >= 150, kind


@pytest.mark.parametrize("record", _records("yes_no"))
def test_yes_no_replies_are_read_as_meant(record: dict[str, Any]) -> None:
    assert read_yes_no(record["text"], reasoning=record.get("reasoning")).verdict == record["expected"]


@pytest.mark.parametrize("record", _records("judge"))
def test_judge_replies_are_read_as_meant(record: dict[str, Any]) -> None:
    reading = read_judge(record["text"], PASSES, reasoning=record.get("reasoning"))
    assert reading.outcome == record["expected"]
    assert normalise(reading.edit) == normalise(record.get("edit", ""))


@pytest.mark.parametrize("record", _records("lists"))
def test_listed_items_are_read_as_meant(record: dict[str, Any]) -> None:
    items = read_items(record["text"], record["limit"], questions=record["kind"] == "questions",
                       reasoning=record.get("reasoning"))
    assert [normalise(i) for i in items] == [normalise(i) for i in record["expected"]]
