"""Property tests: any text into the parsers and templates, never an exception but the typed ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from r3graph import R3ConfigError, load_pack
from r3graph.prompts import STAGE_FIELDS
from r3graph.reflect.parsing import parse_judge_text, parse_lines

PACKS = [load_pack("default")]
texts = st.text(max_size=400)


@given(texts, st.integers(min_value=1, max_value=12))
@settings(max_examples=300, deadline=None)
def test_parse_lines_never_raises_and_respects_the_limit(text: str, limit: int) -> None:
    items = parse_lines(text, limit)
    assert len(items) <= limit
    assert all(isinstance(item, str) and item for item in items)


@given(texts)
@settings(max_examples=300, deadline=None)
def test_parse_judge_text_never_raises(text: str) -> None:
    assert isinstance(parse_judge_text(text), str)


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
def test_verdict_helpers_never_raise(text: str) -> None:
    pack = PACKS[0]
    assert isinstance(pack.is_yes(text), bool)
    assert isinstance(pack.is_sentinel(text), bool)
