"""Error injection and edit instructions, the training data for a judge and a rewriter.

:func:`corrupt_caption` writes the canonical caption of a slightly wrong scene, so each error
reads like one a captioner would make. :func:`edit_instruction` names one concrete fix; it returns
None exactly when :func:`r3graph_scenes.metrics.score_caption` reports an exact match, so "no edit"
and "correct" never disagree.
"""

import random

from r3graph_scenes.language import (
    ObjectRef,
    ParsedCaption,
    ParsedObject,
    ParsedRelation,
    format_caption,
    object_phrase,
    parse_caption,
    ref_phrase,
    relation_sentence,
    scene_content,
)
from r3graph_scenes.metrics import relation_true, resolve, score_parsed
from r3graph_scenes.world import (
    COLOURS,
    EXTENT,
    MAX_OBJECTS,
    OPPOSITE,
    SHAPES,
    SIZES,
    Scene,
    SceneObject,
    holds,
    relation_between,
)

ERROR_KINDS: tuple[str, ...] = ("wrong_colour", "wrong_shape", "wrong_size", "missing_object",
                                "extra_object", "flipped_relation")


def _with(scene: Scene, objects: list[SceneObject]) -> str:
    return format_caption(scene_content(Scene.build(objects)))


def _recolour(scene: Scene, rng: random.Random, attr: str) -> str:
    i = rng.randrange(len(scene.objects))
    obj = scene.objects[i]
    kinds = scene.kind_counts()
    choices = [v for v in (COLOURS if attr == "colour" else SHAPES) if v != getattr(obj, attr)
               and (kinds[(v, obj.shape)] if attr == "colour" else kinds[(obj.colour, v)]) == 0]
    if not choices:  # e.g. a red circle, square, triangle and star: no free shape for a red one
        return _extra(scene, rng) if len(scene.objects) < MAX_OBJECTS else _with(scene, list(scene.objects[1:]))
    objects = list(scene.objects)
    objects[i] = obj.model_copy(update={attr: rng.choice(choices)})
    return _with(scene, objects)


def _extra(scene: Scene, rng: random.Random) -> str:
    kinds = scene.kind_counts()
    colour, shape = rng.choice([(c, s) for c in COLOURS for s in SHAPES if kinds[(c, s)] == 0])
    size = rng.choice(SIZES)
    lo = EXTENT[size] / 2
    new = SceneObject(colour=colour, shape=shape, size=size, x=round(rng.uniform(lo, 1 - lo), 3),
                      y=round(rng.uniform(lo, 1 - lo), 3))
    return _with(scene, [*scene.objects, new])


def corrupt_caption(scene: Scene, rng: random.Random) -> tuple[str, str]:
    """(the caption with exactly one realistic error, the error kind from ``ERROR_KINDS``)."""
    kinds = ["wrong_colour", "wrong_shape", "wrong_size", "extra_object"]
    if len(scene.objects) > 1:
        kinds.append("missing_object")
    if scene.relations:
        kinds.append("flipped_relation")
    kind = rng.choice(kinds)
    if kind in ("wrong_colour", "wrong_shape"):
        return _recolour(scene, rng, kind.removeprefix("wrong_")), kind
    if kind == "wrong_size":
        content = scene_content(scene)
        k = rng.randrange(len(content.objects))
        old = content.objects[k]
        content.objects[k] = old.model_copy(update={"size": "large" if old.size == "small" else "small"})
        return format_caption(content), kind
    if kind == "extra_object":
        return _extra(scene, rng), kind
    if kind == "missing_object":
        objects = list(scene.objects)
        objects.pop(rng.randrange(len(objects)))
        return _with(scene, objects), kind
    content = scene_content(scene)
    k = rng.randrange(len(content.relations))
    rel = content.relations[k]
    content.relations[k] = rel.model_copy(update={"relation": OPPOSITE[rel.relation]})
    return format_caption(content), kind


def _kind_phrase(colour: str, shape: str, count: int = 1) -> str:
    return object_phrase(ParsedObject(colour=colour, shape=shape, count=count))


def _object_edit(parsed: ParsedCaption, scene: Scene) -> str | None:
    mentioned, true = parsed.kind_counts(), scene.kind_counts()
    extra = [k for k, n in mentioned.items() if n > true[k]]
    missing = [k for k in sorted(true, key=lambda k: scene.find(*k)[0]) if true[k] > mentioned[k]]
    for colour, shape in extra:
        what = "the" if mentioned[(colour, shape)] == 1 else "one"
        if true[(colour, shape)] == 0:
            for c, s in missing:
                if c == colour or s == shape:
                    size = scene.objects[scene.find(c, s)[0]].size
                    return f"change {what} {colour} {shape} to a {size} {c} {s}"
        return f"remove {what} {colour} {shape}"
    for colour, shape in missing:
        size = scene.objects[scene.find(colour, shape)[0]].size
        return f"add a {size} {colour} {shape}"
    return None


def _size_edit(parsed: ParsedCaption, scene: Scene) -> str | None:
    for o in parsed.objects:
        if o.size is not None and o.count <= len(scene.find(o.colour, o.shape, o.size)):
            continue
        sizes = [scene.objects[i].size for i in scene.find(o.colour, o.shape)]
        right = next((z for z in sizes if z != o.size), sizes[0])
        phrase = object_phrase(o)
        stated = "the " + (phrase.split(" ", 1)[1] if o.count == 1 else phrase)
        return f"change {stated} to {object_phrase(o.model_copy(update={'size': right}))}"
    return None


def _relation_edit(parsed: ParsedCaption, scene: Scene) -> str | None:
    for rel in parsed.relations:
        if relation_true(rel, scene):
            continue
        s, o = resolve(rel.subject, scene), resolve(rel.object, scene)
        if s is None or o is None or s == o:
            return f"remove the sentence {relation_sentence(rel)}"
        a, b = scene.objects[s], scene.objects[o]
        right = OPPOSITE[rel.relation] if holds(a, OPPOSITE[rel.relation], b) else relation_between(a, b)
        if right is None:
            return f"remove the sentence {relation_sentence(rel)}"
        fixed = ParsedRelation(subject=ObjectRef(colour=a.colour, shape=a.shape), relation=right,
                               object=ObjectRef(colour=b.colour, shape=b.shape))
        return f"{ref_phrase(fixed.subject)} is {right} {ref_phrase(fixed.object)}"
    return None


def edit_instruction(draft: str, scene: Scene) -> str | None:
    """One concrete edit toward the truth (objects first, then sizes, then relations), or None.

    Forms: "change the red circle to a small blue circle", "remove the green star",
    "add a small yellow square", "change the large red circle to a small red circle",
    "the red circle is right of the blue square", "remove the sentence the ... ".
    """
    parsed = parse_caption(draft)
    if score_parsed(parsed, scene).exact_match:
        return None
    for step in (_object_edit, _size_edit, _relation_edit):
        edit = step(parsed, scene)
        if edit is not None:
            return edit
    raise AssertionError("not an exact match, yet no edit found")  # pragma: no cover
