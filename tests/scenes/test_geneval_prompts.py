"""The GenEval-category prompt generator: every prompt says what its spec says, the sets are balanced,
seeded and held out from the world's captions, and the stand-in painter can paint every one."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from r3graph_scenes.geneval_prompts import CATEGORIES, COUNTS, _all, available, geneval_prompts
from r3graph_scenes.language import SIZE_WORDS, caption, parse_caption
from r3graph_scenes.metrics import score_parsed
from r3graph_scenes.painter import layout
from r3graph_scenes.world import RELATIONS, generate_scenes


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_prompt_of_a_category_reads_as_its_spec(category: str) -> None:
    for text, spec in _all(category):
        assert parse_caption(text) == spec, text


def test_the_categories_hold_what_geneval_asks() -> None:
    by = {c: list(_all(c)) for c in CATEGORIES}
    assert all(len(s.objects) == 1 and s.objects[0].count == 1 for _, s in by["single_object"])
    assert {s.objects[0].count for _, s in by["counting"]} == set(COUNTS)  # two, three and four
    assert all(len({o.colour for o in s.objects}) == 1 and len({o.shape for o in s.objects}) == 2
               for _, s in by["two_object"])
    assert all(len({o.colour for o in s.objects}) == 2 and len({o.shape for o in s.objects}) == 1
               for _, s in by["colours"])
    assert all(len({o.colour for o in s.objects}) == 2 and len({o.shape for o in s.objects}) == 2
               for _, s in by["colour_attr"])
    assert {s.relations[0].relation for _, s in by["position"]} == set(RELATIONS)  # both axes, both ways
    assert sum(available(c) for c in CATEGORIES) >= 300


def test_a_set_is_seeded_balanced_and_repeats_nothing_before_a_category_is_used_up() -> None:
    prompts = geneval_prompts(300)
    assert prompts == geneval_prompts(300) and prompts != geneval_prompts(300, seed=1)
    assert Counter(p.category for p in prompts) == {c: 50 for c in CATEGORIES}
    assert [p.index for p in prompts] == list(range(300))
    for category in CATEGORIES:
        texts = [p.prompt for p in prompts if p.category == category]
        assert len(set(texts)) == min(len(texts), available(category)), category
    with pytest.raises(ValueError):
        geneval_prompts(-1)


def test_prompts_are_not_the_worlds_captions() -> None:
    captions = {caption(s) for s in generate_scenes(seed=4242, n=2000)}
    prompts = geneval_prompts(600)
    assert not captions & {p.prompt for p in prompts}
    assert all(not set(p.prompt.split()) & set(SIZE_WORDS) for p in prompts)  # GenEval states no sizes


def test_the_stand_in_painter_paints_every_prompt_right() -> None:
    rng = random.Random(3)
    for p in geneval_prompts(300):
        scene = layout(p.prompt, rng)
        score = score_parsed(p.spec, scene)
        assert p.spec.kind_counts() == scene.kind_counts() and score.n_relations_true == score.n_relations, p
