"""Paint a prompt in the scene world, and apply one edit sentence to a painting.

This is the "generator" half of the stand-in image server (:mod:`r3graph_scenes.paint_server`):
:func:`layout` turns a prompt into a scene that satisfies it (every object, count, size and
relation), :func:`apply_edit` does what an instruction-following editor does with one edit
sentence from :func:`r3graph_scenes.image_edits.image_edit`. A painting travels as a PNG that
carries its scene in a text chunk (:func:`encode_png` / :func:`decode_scene`), because an edit
request gets only the image bytes back and the stand-in must know what it painted.

Nothing here is a model: it is exact, so the loop around it (judge, edit, retry) can be tested
against a generator whose mistakes are known.
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, PngImagePlugin

from r3graph_scenes.image_edits import _in_bounds
from r3graph_scenes.language import (
    COLOUR_WORDS,
    NUMBER_WORDS,
    PLURAL_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
    ObjectRef,
    ParsedRelation,
    parse_caption,
    relation_sentence,
)
from r3graph_scenes.metrics import resolve
from r3graph_scenes.world import (
    DECIMALS,
    EDGE,
    EXTENT,
    MAX_OBJECTS,
    OPPOSITE,
    RELATIONS,
    SIZES,
    Scene,
    SceneObject,
    _place,
    compatible,
    holds,
    render,
)

SCENE_KEY = "r3graph-scene"
LAYOUT_TRIES = 3000
MOVE_TRIES = 2000
EXAMPLE = "e.g. 'a large red circle and a small blue square . the red circle is left of the blue square .'"


# -- layout: prompt -> scene ------------------------------------------------------------------------


def _specs(prompt: str, rng: random.Random) -> list[tuple[str, str, str]]:
    """(colour, shape, size) per object, counts expanded. Unsized objects take the size stated for
    their colour+shape elsewhere in the prompt, else one random size per colour+shape (the world's
    rule that twins share a size, so "two red circles" paints two of the same size)."""
    objects = parse_caption(prompt).objects
    if sum(o.count for o in objects) > MAX_OBJECTS:  # before expanding: "1000000 red circles" is one line
        raise ValueError(f"the prompt names {sum(o.count for o in objects)} objects; this world paints at most "
                         f"{MAX_OBJECTS}")
    stated = {(o.colour, o.shape): o.size for o in objects if o.size is not None}
    chosen: dict[tuple[str, str], str] = {}
    out: list[tuple[str, str, str]] = []
    for o in objects:
        size = o.size or stated.get((o.colour, o.shape)) or chosen.setdefault((o.colour, o.shape), rng.choice(SIZES))
        out.extend([(o.colour, o.shape, size)] * o.count)
    return out


def _spec_index(ref: ObjectRef, specs: list[tuple[str, str, str]], rel: ParsedRelation) -> int:
    found = [i for i, (c, s, _) in enumerate(specs) if s == ref.shape and ref.colour in (None, c)]
    if len(found) != 1:
        name = " ".join(w for w in ("the", ref.colour, ref.shape) if w)
        why = "names no object of the prompt" if not found else f"names {len(found)} objects"
        raise ValueError(f"cannot paint {relation_sentence(rel)!r}: {name} {why}; a relation needs exactly one "
                         f"object of that colour and shape, {EXAMPLE}")
    return found[0]


def _check_consistent(relations: list[tuple[int, str, int]]) -> None:
    """Refuse contradictions (a cycle of "left of" or of "above") at once instead of after every try."""
    for forward, backward in (("left of", "right of"), ("above", "below")):
        edges = {(i, j) if rel == forward else (j, i) for i, rel, j in relations if rel in (forward, backward)}
        nodes = {n for e in edges for n in e}
        reach = set(edges)
        for k in nodes:  # transitive closure; at most MAX_OBJECTS nodes
            reach |= {(i, j) for i, a in reach if a == k for b, j in reach if b == k}
        if any(i == j for i, j in reach):
            raise ValueError(f"the prompt's relations contradict each other ({forward} and {backward} in a cycle); "
                             "state each relation once, consistently")


def layout(prompt: str, rng: random.Random, *, tries: int = LAYOUT_TRIES) -> Scene:
    """A scene satisfying ``prompt``: its objects in bounds, apart, and every stated relation true.

    Raises ValueError saying what to change when the prompt names no paintable object (each needs
    a colour and a shape), more than ``MAX_OBJECTS``, or relations that cannot all hold.
    """
    specs = _specs(prompt, rng)
    if not specs:
        raise ValueError(f"the prompt names no object this world can paint: give each object a colour and a shape, "
                         f"{EXAMPLE}")
    if len(specs) > MAX_OBJECTS:
        raise ValueError(f"the prompt names {len(specs)} objects; this world paints at most {MAX_OBJECTS}")
    rels = [(_spec_index(r.subject, specs, r), r.relation, _spec_index(r.object, specs, r), r)
            for r in parse_caption(prompt).relations]
    for i, _, j, r in rels:
        if i == j:
            raise ValueError(f"cannot paint {relation_sentence(r)!r}: an object cannot be {r.relation} itself")
    _check_consistent([(i, rel, j) for i, rel, j, _ in rels])
    for _ in range(tries):
        placed: list[SceneObject] = []
        for k, (colour, shape, size) in enumerate(specs):
            obj = _place(rng, colour, shape, size, placed, tries=30)
            if obj is None:
                break
            placed.append(obj)
            # Check each relation as soon as both ends exist: a bad early position fails fast.
            if not all(holds(placed[i], rel, placed[j]) for i, rel, j, _ in rels if max(i, j) == k):
                break
        else:
            return Scene.build(placed)
    raise ValueError(f"could not lay out the prompt in {tries} tries: the objects do not fit with its relations; "
                     "use fewer or smaller objects, or fewer relations")


# -- apply_edit: one edit sentence -> scene -----------------------------------------------------------


@dataclass
class _Phrase:
    """What a noun phrase of an edit says: "the two small red circles" -> (2, small, red, circle)."""

    count: int | None = None
    size: str | None = None
    colour: str | None = None
    shape: str | None = None


def _phrase(text: str) -> _Phrase:
    out = _Phrase()
    for word in re.findall(r"[a-z]+|\d+", text):
        if word.isdigit() or (word in NUMBER_WORDS and word not in ("no", "none", "zero")):
            # Capped: "add 1000000 red circles" must not loop a million times (nothing that big fits anyway).
            out.count = out.count or min(int(word) if word.isdigit() else NUMBER_WORDS[word], MAX_OBJECTS)
        elif word in SIZE_WORDS:
            out.size = out.size or SIZE_WORDS[word]
        elif word in COLOUR_WORDS:
            out.colour = out.colour or COLOUR_WORDS[word]
        elif word in SHAPE_WORDS:
            out.shape = out.shape or SHAPE_WORDS[word]
            if word in PLURAL_WORDS and out.count is None:
                out.count = 2
    return out


def _matches(scene: Scene, p: _Phrase) -> list[int]:
    """Objects a phrase names; a wrong size is forgiven (the colour+shape is what names an object)."""
    if p.shape is None and p.colour is None:
        return []
    return scene.find(p.colour, p.shape, p.size) or scene.find(p.colour, p.shape)


def _free_spot(rng: random.Random, obj: SceneObject, others: list[SceneObject],
               ok: Callable[[SceneObject], bool] = lambda _: True, tries: int = MOVE_TRIES) -> SceneObject | None:
    """``obj`` moved to a random spot that is in bounds, apart from ``others`` and passes ``ok``."""
    lo = EXTENT[obj.size] / 2 + EDGE
    for _ in range(tries):
        x, y = round(rng.uniform(lo, 1 - lo), DECIMALS), round(rng.uniform(lo, 1 - lo), DECIMALS)
        moved = obj.model_copy(update={"x": x, "y": y})
        if all(compatible(moved, o) for o in others) and ok(moved):
            return moved
    return None


def _fits(objects: list[SceneObject], moved: tuple[int, ...]) -> bool:
    """The ``moved`` objects are in bounds and apart from every other object. Only they are checked:
    an editor is not to blame for (nor should it refuse to work around) what it did not touch."""
    return all(_in_bounds(objects[k]) and all(compatible(objects[k], o) for i, o in enumerate(objects) if i != k)
               for k in moved)


def _refit(objects: list[SceneObject], k: int, rng: random.Random) -> list[SceneObject] | None:
    """Keep object ``k`` where it is if it still fits; else nudge it into bounds; else re-place it."""
    if _fits(objects, (k,)):
        return objects
    obj, others = objects[k], objects[:k] + objects[k + 1:]
    lo = EXTENT[obj.size] / 2 + EDGE
    nudged = obj.model_copy(update={"x": min(max(obj.x, lo), 1 - lo), "y": min(max(obj.y, lo), 1 - lo)})
    if _in_bounds(nudged) and all(compatible(nudged, o) for o in others):
        return [*others[:k], nudged, *others[k:]]
    moved = _free_spot(rng, obj, others)
    return None if moved is None else [*others[:k], moved, *others[k:]]


def _change(scene: Scene, src: _Phrase, dst: _Phrase, rng: random.Random) -> Scene:
    objects = list(scene.objects)
    for k in _matches(scene, src)[: src.count or 1]:
        old = objects[k]
        objects[k] = old.model_copy(update={"colour": dst.colour or old.colour, "shape": dst.shape or old.shape,
                                            "size": dst.size or old.size})
        refit = _refit(objects, k, rng)
        if refit is None:  # nowhere to put the grown object: the editor leaves the painting as it was
            return scene
        objects = refit
    return Scene.build(objects)


def _remove(scene: Scene, what: _Phrase) -> Scene:
    drop = set(_matches(scene, what)[: what.count or 1])
    return Scene.build([o for i, o in enumerate(scene.objects) if i not in drop]) if drop else scene


def _add(scene: Scene, what: _Phrase, rng: random.Random) -> Scene:
    if what.colour is None or what.shape is None:
        return scene
    twins = scene.find(what.colour, what.shape)
    size = what.size or (scene.objects[twins[0]].size if twins else rng.choice(SIZES))
    objects = list(scene.objects)
    for _ in range(what.count or 1):
        new = _place(rng, what.colour, what.shape, size, objects, tries=MOVE_TRIES)
        if new is None:
            return scene
        objects.append(new)
    return Scene.build(objects)


def _kept_facts(objects: list[SceneObject], k: int, skip: int) -> Callable[[SceneObject], bool]:
    """A test that object ``k`` moved elsewhere keeps every relation it has now with the objects other
    than ``skip``: the edit names one relation, but the prompt may state others that hold already."""
    facts = [(t, r) for t, o in enumerate(objects) if t not in (k, skip) for r in RELATIONS if holds(objects[k], r, o)]
    return lambda moved: all(holds(moved, r, objects[t]) for t, r in facts)


def _swapped(objects: list[SceneObject], i: int, j: int) -> list[SceneObject]:
    out = list(objects)
    a, b = objects[i], objects[j]
    out[i], out[j] = a.model_copy(update={"x": b.x, "y": b.y}), b.model_copy(update={"x": a.x, "y": a.y})
    return out


def _enforce(scene: Scene, rel: ParsedRelation, rng: random.Random) -> Scene:
    """Make ``rel`` hold with the smallest change that does it.

    In order: swap the two objects (a generator's classic layout error); move one of them to a spot
    that keeps its other relations (the prompt may state those); swap one of them with a third object
    (that third object was the one swapped); finally move one of them anywhere the relation holds.
    """
    s, o = resolve(rel.subject, scene), resolve(rel.object, scene)
    if s is None or o is None or s == o or holds(scene.objects[s], rel.relation, scene.objects[o]):
        return scene
    objects = list(scene.objects)

    def move(mover: int, keep: bool) -> list[SceneObject] | None:
        partner = o if mover == s else s
        relation = rel.relation if mover == s else OPPOSITE[rel.relation]
        kept = _kept_facts(objects, mover, partner) if keep else None
        others = [x for i, x in enumerate(objects) if i != mover]

        def ok(m: SceneObject) -> bool:
            return holds(m, relation, objects[partner]) and (kept is None or kept(m))

        spot = _free_spot(rng, objects[mover], others, ok)
        return None if spot is None else [*objects[:mover], spot, *objects[mover + 1:]]

    thirds = [(k, t) for k in (s, o) for t in range(len(objects))
              if t not in (s, o) and objects[t].kind != objects[k].kind]
    steps: list[tuple[Callable[[], list[SceneObject] | None], tuple[int, ...]]] = [
        (lambda: _swapped(objects, s, o), (s, o)),
        (lambda: move(s, True), (s,)),
        (lambda: move(o, True), (o,)),
        *((lambda k=k, t=t: _swapped(objects, k, t), (k, t)) for k, t in thirds),
        (lambda: move(s, False), (s,)),
        (lambda: move(o, False), (o,)),
    ]
    for step, moved in steps:
        candidate = step()
        if candidate is not None and _fits(candidate, moved) and holds(candidate[s], rel.relation, candidate[o]):
            return Scene.build(candidate)
    return scene


_CHANGE = re.compile(r"^change (?P<src>.+?) (?:in)?to (?P<dst>.+)$")
_REMOVE = re.compile(r"^(?:remove|delete|drop) (?P<what>.+)$")
_ADD = re.compile(r"^add (?P<what>.+)$")


def apply_edit(scene: Scene, instruction: str, rng: random.Random) -> Scene:
    """``scene`` after one edit sentence (forms: change / remove / add / a relation that must hold).

    An instruction that names nothing in the scene, cannot be carried out, or is not an edit ("no
    further edit needed", "remove the sentence ...", empty) leaves the scene unchanged, as a real
    editor given a nonsense instruction would; it never raises.
    """
    text = " ".join(instruction.lower().split()).strip(" .!;")
    if not text or text.startswith("remove the sentence"):
        return scene
    if m := _CHANGE.match(text):
        return _change(scene, _phrase(m["src"]), _phrase(m["dst"]), rng)
    if m := _REMOVE.match(text):
        return _remove(scene, _phrase(m["what"]))
    if m := _ADD.match(text):
        return _add(scene, _phrase(m["what"]), rng)
    for rel in parse_caption(text).relations:
        scene = _enforce(scene, rel, rng)
    return scene


# -- PNG with the scene inside ------------------------------------------------------------------------


def encode_png(scene: Scene, size: int = 256) -> bytes:
    """The scene rendered at ``size`` px, as PNG bytes that carry ``scene.to_json()`` (text chunk SCENE_KEY)."""
    info = PngImagePlugin.PngInfo()
    info.add_text(SCENE_KEY, scene.to_json())
    buffer = io.BytesIO()
    render(scene, size).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def decode_scene(png: bytes) -> Scene | None:
    """The scene stored by :func:`encode_png`, or None for any other image (or bytes that are no image)."""
    try:
        with Image.open(io.BytesIO(png)) as img:
            text = img.info.get(SCENE_KEY)
        return Scene.from_json(text) if isinstance(text, str) else None
    except (OSError, ValueError, SyntaxError):  # not an image / bad JSON (pydantic's ValidationError is a ValueError)
        return None
