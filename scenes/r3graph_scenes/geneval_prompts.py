"""Held-out text -> image prompts in GenEval's six categories, each with the structured spec it is scored by.

Written here, not by the world's caption generator (:func:`r3graph_scenes.language.caption`), so a
benchmark on them does not reward a judge or a generator for having seen the captions' phrasing:
GenEval's own template ("a photo of ..."), no sizes (GenEval states none), counts of two to four,
relations along both axes in both directions. In this world an object's class is its colour and
shape together (the stand-in painter cannot paint a shape without a colour), so GenEval's categories
map as follows; what varies between them is what the prompt makes hard:

* ``single_object``: one object -- "a photo of a red circle";
* ``two_object``: two shapes in one colour, so only the classes (shapes) differ -- "a red circle and a red star";
* ``counting``: two, three or four of one kind -- "a photo of three red circles";
* ``colours``: one shape in two colours, so only the colours differ -- "a red circle and a blue circle";
* ``position``: two kinds of different shapes and one relation, either axis -- "a red circle above a blue star";
* ``colour_attr``: two shapes in two colours, each bound to its own -- "a red circle and a blue star".

Every prompt is read by :func:`~r3graph_scenes.language.parse_caption` exactly as its spec says (a
test checks all of them), so the painter, the judge and the scorer agree on what was asked.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from r3graph_scenes.language import NUMBER_TEXT, ObjectRef, ParsedCaption, ParsedObject, ParsedRelation
from r3graph_scenes.world import COLOURS, RELATIONS, SHAPES

CATEGORIES: tuple[str, ...] = ("single_object", "two_object", "counting", "colours", "position", "colour_attr")
COUNTS: tuple[int, ...] = (2, 3, 4)
GENEVAL_SEED = 5150  # never used by training (0), validation (999), the model card (12345) or captions (4242)
TEMPLATE = "a photo of {}"


@dataclass(frozen=True)
class GenevalPrompt:
    """One prompt, its category, and what an image must show to be right (sizes never stated)."""

    index: int
    category: str
    prompt: str
    spec: ParsedCaption


def _thing(colour: str, shape: str, count: int = 1) -> str:
    """"a red circle" / "an orange star" / "three red circles"."""
    if count == 1:
        return f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {shape}"
    return f"{NUMBER_TEXT[count]} {colour} {shape}s"


def _pair(a: tuple[str, str], b: tuple[str, str]) -> tuple[str, ParsedCaption]:
    text = TEMPLATE.format(f"{_thing(*a)} and {_thing(*b)}")
    return text, ParsedCaption(objects=[ParsedObject(colour=c, shape=s) for c, s in (a, b)])


def _all(category: str) -> Iterator[tuple[str, ParsedCaption]]:
    """Every prompt of a category, in a fixed order (the seed shuffles it)."""
    kinds = list(itertools.product(COLOURS, SHAPES))
    if category == "single_object":
        for c, s in kinds:
            yield TEMPLATE.format(_thing(c, s)), ParsedCaption(objects=[ParsedObject(colour=c, shape=s)])
    elif category == "counting":
        for (c, s), n in itertools.product(kinds, COUNTS):
            yield TEMPLATE.format(_thing(c, s, n)), ParsedCaption(objects=[ParsedObject(colour=c, shape=s, count=n)])
    elif category == "two_object":
        for c, (s1, s2) in itertools.product(COLOURS, itertools.permutations(SHAPES, 2)):
            yield _pair((c, s1), (c, s2))
    elif category == "colours":
        for s, (c1, c2) in itertools.product(SHAPES, itertools.permutations(COLOURS, 2)):
            yield _pair((c1, s), (c2, s))
    elif category == "colour_attr":
        for (c1, c2), (s1, s2) in itertools.product(itertools.permutations(COLOURS, 2),
                                                    itertools.permutations(SHAPES, 2)):
            yield _pair((c1, s1), (c2, s2))
    elif category == "position":
        for (c1, s1), (c2, s2), rel in itertools.product(kinds, kinds, RELATIONS):
            if s1 == s2:
                continue
            text = TEMPLATE.format(f"{_thing(c1, s1)} {rel} {_thing(c2, s2)}")
            yield text, ParsedCaption(
                objects=[ParsedObject(colour=c1, shape=s1), ParsedObject(colour=c2, shape=s2)],
                relations=[ParsedRelation(subject=ObjectRef(colour=c1, shape=s1), relation=rel,
                                          object=ObjectRef(colour=c2, shape=s2))])
    else:
        raise ValueError(f"unknown category {category!r}; choose from {CATEGORIES}")


def available(category: str) -> int:
    """How many distinct prompts a category has."""
    return sum(1 for _ in _all(category))


def geneval_prompts(n: int, seed: int = GENEVAL_SEED,
                    categories: tuple[str, ...] = CATEGORIES) -> list[GenevalPrompt]:
    """``n`` prompts, the categories taking turns (so any prefix is balanced), identical for the same
    seed on any machine. Within a category no prompt repeats until all of it is used (single_object
    has 24, the smallest; the rest have 72 to 1,728)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    pools = {c: list(_all(c)) for c in categories}
    queues: dict[str, list[tuple[str, ParsedCaption]]] = {c: [] for c in categories}
    out: list[GenevalPrompt] = []
    for i in range(n):
        category = categories[i % len(categories)]
        if not queues[category]:
            queues[category] = rng.sample(pools[category], len(pools[category]))
        text, spec = queues[category].pop()
        out.append(GenevalPrompt(index=i, category=category, prompt=text, spec=spec))
    return out
