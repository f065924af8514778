"""GenEval-style scores of one image against what its prompt asks, read from the image's PIXELS.

GenEval scores a text-to-image model with an object detector; here that is
:func:`r3graph_scenes.detector.detect`, which reads pixels only, so the same scorer works for the
stand-in painter and for any generator that paints the scene world. The scene the stand-in stores
in its PNG (:func:`r3graph_scenes.painter.decode_scene`) is used only where the stand-in is the
test oracle: to measure the detector itself on the images a benchmark produced
(:func:`detector_agrees`), and by the oracle judge.
"""

from __future__ import annotations

from collections import Counter

from PIL import UnidentifiedImageError
from pydantic import BaseModel

from r3graph_scenes.detector import compare_scenes, detect
from r3graph_scenes.language import ParsedCaption, parse_caption
from r3graph_scenes.metrics import relation_true, size_correct
from r3graph_scenes.painter import decode_scene
from r3graph_scenes.world import Scene

ASPECTS: tuple[str, ...] = ("objects", "colours", "counts", "sizes", "positions")


class ImageScore(BaseModel):
    """One image against its prompt. ``positions`` is None when the prompt states no relation."""

    exact: bool
    objects: bool  # every colour+shape kind of the prompt, with its count, and nothing else
    colours: bool  # objects of a shape the prompt names have the prompt's colours (missing ones aside)
    counts: bool  # how many objects of each shape (colour aside): GenEval's counting
    sizes: bool  # every painted object that matches a prompt object of a stated size has that size
    positions: bool | None  # every stated relation holds
    decoded: bool = True  # False: no readable image (a failed run), every aspect wrong


def read_image(png: bytes) -> Scene | None:
    """What the detector sees in image bytes; None for bytes that are no image."""
    try:
        return detect(png)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def score_spec(wanted: ParsedCaption, scene: Scene | None) -> ImageScore:
    """GenEval-style score of a scene (as detected) against what a prompt asks.

    The aspects split a generator's mistakes: a wrong colour fails objects and colours, a missing
    object objects and counts, swapped positions positions only. As in GenEval a relation needs both
    of its objects, so positions also fail when a named object is missing or recoloured. A size the
    prompt does not state (GenEval states none) is not checked."""
    if scene is None:
        return ImageScore(exact=False, objects=False, colours=False, counts=False, sizes=False,
                          positions=False if wanted.relations else None, decoded=False)
    want_kinds, got_kinds = wanted.kind_counts(), scene.kind_counts()
    want_shapes, got_shapes = Counter[str](), Counter[str]()
    for (_, shape), n in want_kinds.items():
        want_shapes[shape] += n
    for (_, shape), n in got_kinds.items():
        got_shapes[shape] += n
    # Colour attribution: of the objects matched by shape, how many also match by colour.
    by_shape = sum(min(n, got_shapes[s]) for s, n in want_shapes.items())
    by_kind = sum(min(n, got_kinds[k]) for k, n in want_kinds.items())
    sized: Counter[tuple[str, str]] = Counter()
    for o in wanted.objects:
        if o.size is not None:
            sized[(o.colour, o.shape)] += o.count
    sizes = size_correct(wanted, scene) == sum(min(n, got_kinds[k]) for k, n in sized.items())
    positions = all(relation_true(r, scene) for r in wanted.relations) if wanted.relations else None
    objects = want_kinds == got_kinds
    return ImageScore(exact=objects and sizes and positions is not False, objects=objects,
                      colours=by_kind == by_shape, counts=want_shapes == got_shapes, sizes=sizes,
                      positions=positions)


def score_image(prompt: str | ParsedCaption, painted: Scene | bytes | None) -> ImageScore:
    """:func:`score_spec` of an image (bytes: read by the detector) or an already known scene, against a
    prompt (its text, read by the world's parser, or its structured spec)."""
    wanted = parse_caption(prompt) if isinstance(prompt, str) else prompt
    return score_spec(wanted, read_image(painted) if isinstance(painted, bytes) else painted)


def detector_agrees(png: bytes | None) -> bool | None:
    """Whether the detector reads a stand-in painting exactly as painted (the scene in its PNG is the
    truth here, used as a test oracle); None when the image carries no painted scene."""
    truth = decode_scene(png) if png is not None else None
    if truth is None:
        return None
    found = read_image(png)  # type: ignore[arg-type]  # png is bytes whenever truth is not None
    return found is not None and compare_scenes(found, truth).exact
