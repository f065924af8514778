"""Text -> image in the scene world: a generator's mistakes, and the edit that fixes one.

For output mode ``image`` the artefact is a painted scene and the prompt is the truth. A stand-in
generator paints the prompt's scene with, sometimes, one mistake (:func:`make_mistake`); the judge
looks at the painting and writes one edit that moves it toward the prompt (:func:`image_edit` is
that edit, computed exactly, the training target for scenes-vlm's image judge).

The edit language is the one the caption judge already uses (``r3graph_scenes.edits``): object and
size edits read the same in both directions ("change the red circle to a small blue circle" is
applied to whatever holds the red circle: a caption or a painting). Only relations differ: a caption
with a wrong relation is rewritten to the truth, while a painting that breaks the prompt's relation
is told the relation it must satisfy ("the red circle is left of the blue square").
"""

from __future__ import annotations

import random

from r3graph_scenes.edits import _object_edit, _size_edit
from r3graph_scenes.language import caption, parse_caption, relation_sentence
from r3graph_scenes.metrics import relation_true, score_caption
from r3graph_scenes.world import COLOURS, EDGE, EXTENT, Scene, SceneObject, compatible

MISTAKE_KINDS: tuple[str, ...] = ("wrong_colour", "missing_object", "swapped_positions")


def _in_bounds(obj: SceneObject) -> bool:
    lo = EXTENT[obj.size] / 2 + EDGE
    return lo <= obj.x <= 1 - lo and lo <= obj.y <= 1 - lo


def _valid(objects: list[SceneObject]) -> bool:
    return all(_in_bounds(o) for o in objects) and all(
        compatible(a, b) for i, a in enumerate(objects) for b in objects[i + 1 :]
    )


def _wrong_colour(scene: Scene, rng: random.Random, _prompt: str) -> Scene | None:
    i = rng.randrange(len(scene.objects))
    obj = scene.objects[i]
    kinds = scene.kind_counts()
    choices = [c for c in COLOURS if c != obj.colour and kinds[(c, obj.shape)] == 0]
    if not choices:
        return None
    objects = list(scene.objects)
    objects[i] = obj.model_copy(update={"colour": rng.choice(choices)})
    return Scene.build(objects)


def _missing_object(scene: Scene, rng: random.Random, _prompt: str) -> Scene | None:
    if len(scene.objects) < 2:
        return None
    objects = list(scene.objects)
    objects.pop(rng.randrange(len(objects)))
    return Scene.build(objects)


def _swapped_positions(scene: Scene, rng: random.Random, prompt: str) -> Scene | None:
    """Two objects of different kinds trade places (a classic layout error of generators); only a
    swap that breaks the prompt counts (a swap no stated relation notices is no mistake)."""
    pairs = [(i, j) for i in range(len(scene.objects)) for j in range(i + 1, len(scene.objects))
             if scene.objects[i].kind != scene.objects[j].kind]
    rng.shuffle(pairs)
    for i, j in pairs:
        objects = list(scene.objects)
        a, b = objects[i], objects[j]
        objects[i] = a.model_copy(update={"x": b.x, "y": b.y})
        objects[j] = b.model_copy(update={"x": a.x, "y": a.y})
        if _valid(objects):
            swapped = Scene.build(objects)
            if not score_caption(prompt, swapped).exact_match:
                return swapped
    return None


_MISTAKES = {"wrong_colour": _wrong_colour, "missing_object": _missing_object,
             "swapped_positions": _swapped_positions}


def make_mistake(
    scene: Scene, rng: random.Random, kinds: tuple[str, ...] = MISTAKE_KINDS, prompt: str | None = None
) -> tuple[Scene, str] | None:
    """The scene with one mistake of a kind from ``kinds`` (chosen at random among those that apply
    to this scene, e.g. no missing object in a one-object scene), and its kind; None if none applies.

    ``prompt`` is what the painting is judged against (default: the scene's canonical caption); a
    painter laying out a user's prompt passes it, since its scene's own caption may state other
    relations."""
    unknown = set(kinds) - set(_MISTAKES)
    if unknown:
        raise ValueError(f"unknown mistake kinds {sorted(unknown)}; choose from {MISTAKE_KINDS}")
    order = list(kinds)
    rng.shuffle(order)
    for kind in order:
        wrong = _MISTAKES[kind](scene, rng, caption(scene) if prompt is None else prompt)
        if wrong is not None:
            return wrong, kind
    return None


def image_edit(prompt: str, painted: Scene, target: Scene) -> str | None:
    """One edit that moves ``painted`` toward the ``prompt`` (whose scene is ``target``), or None
    exactly when the painting satisfies the prompt (every object, colour, count, size and relation).

    Objects first, then sizes, then the prompt's relations; ``target`` supplies the sizes of objects
    the painting lacks.
    """
    if score_caption(prompt, painted).exact_match:
        return None
    painted_caption = parse_caption(caption(painted))
    for step in (_object_edit, _size_edit):
        edit = step(painted_caption, target)
        if edit is not None:
            return edit
    for rel in parse_caption(prompt).relations:
        if not relation_true(rel, painted):
            return relation_sentence(rel)
    raise AssertionError("the painting fails the prompt, yet no edit found")  # pragma: no cover
