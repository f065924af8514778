"""Property tests: any text into the parsers and templates, never an exception but the typed ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from r3graph import R3ConfigError, load_pack
from r3graph.prompts import STAGE_FIELDS
from r3graph.reflect.verdicts import read_items, read_judge, read_yes_no
from r3graph.reply_text import loose_json, split_reasoning

PACKS = [load_pack("default")]
texts = st.text(max_size=400)


@given(texts, st.integers(min_value=1, max_value=12))
@settings(max_examples=300, deadline=None)
def test_read_items_never_raises_and_respects_the_limit(text: str, limit: int) -> None:
    items = read_items(text, limit)
    assert len(items) <= limit
    assert all(isinstance(item, str) and item for item in items)


@given(texts)
@settings(max_examples=300, deadline=None)
def test_readers_never_raise(text: str) -> None:
    reading = read_judge(text, PACKS[0].accepted_passes)
    assert reading.outcome in ("pass", "edit", "unclear") and (reading.outcome == "edit") == bool(reading.edit)
    assert read_yes_no(text).verdict in ("yes", "no", "unclear")
    assert "</think>" not in split_reasoning(text).answer
    loose_json(text)


@given(st.sampled_from(sorted(STAGE_FIELDS)), st.dictionaries(st.sampled_from(
    ["instruction", "draft", "question", "claim", "findings", "k", "answer", "verdict"]), texts))
@settings(max_examples=300, deadline=None)
def test_rendering_any_values_into_any_stage_never_raises(stage: str, values: dict[str, str]) -> None:
    for pack in PACKS:
        rendered = pack.render(stage, **values)
        for name, value in values.items():
            if name in STAGE_FIELDS[stage] and f"{{{name}}}" in getattr(pack, stage):
                assert value in rendered  # inserted verbatim, braces and all


@given(texts)
@settings(max_examples=200, deadline=None)
def test_user_templates_either_load_or_fail_typed(template: str) -> None:
    data = load_pack("default").model_dump()
    try:
        pack = load_pack({**data, "reason": template})
    except R3ConfigError:
        return
    assert isinstance(pack.render("reason", instruction="x"), str)


@given(texts)
@settings(max_examples=200, deadline=None)
def test_readers_never_raise_on_wrapped_text(text: str) -> None:
    for wrapped in (f"<think>{text}</think>{text}", f"```json\n{{\"edit\": \"{text}", f"[{text},"):
        assert read_judge(wrapped, PACKS[0].accepted_passes).outcome in ("pass", "edit", "unclear")
        assert read_yes_no(wrapped).verdict in ("yes", "no", "unclear")
        read_items(wrapped, 3, questions=True)
