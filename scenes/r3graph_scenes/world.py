"""A tiny world of coloured shapes whose truth is known exactly.

Everything the rest of the project measures (captions, answers, edits) is checked against a
:class:`Scene`, so the generator guarantees that every relation it states is unambiguous:

* objects never overlap (their bounding boxes stay ``PAD`` apart);
* on each axis, two objects are either aligned (centres within ``ALIGN_MAX``) or clearly apart
  (centres at least ``MIN_GAP`` apart), never in between, so "left of" / "above" have crisp
  yes/no answers for every pair;
* relations are only stated between objects whose colour+shape is unique in the scene, so
  "the red circle" always names exactly one object;
* two objects sharing colour+shape also share size, so "two small red circles" is exact.

Coordinates are the object centre in [0, 1] image coordinates, y pointing down.
"""

import itertools
import math
import random
from collections import Counter

from PIL import Image, ImageDraw
from pydantic import BaseModel, Field

COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZES: tuple[str, ...] = ("small", "large")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
OPPOSITE: dict[str, str] = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

MAX_OBJECTS = 4
# Bounding-box side as a share of the image: 12.8 px and 24 px at the 64 px model input.
EXTENT: dict[str, float] = {"small": 0.2, "large": 0.375}
MIN_GAP = 0.2  # centres at least this far apart on an axis -> a relation on that axis holds
ALIGN_MAX = 0.1  # centres at most this far apart -> aligned; the band in between is never generated
PAD = 0.03  # minimum empty space between bounding boxes
EDGE = 0.02  # minimum space between a bounding box and the image border
DUPLICATE_P = 0.2  # chance that a new object copies an existing colour+shape (so counts occur)
DECIMALS = 3  # positions are rounded before any check, so JSON round trips are exact

BACKGROUND = (245, 245, 240)
RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 80, 230),
    "yellow": (240, 200, 0),
    "purple": (140, 40, 190),
    "orange": (255, 135, 0),
}


class SceneObject(BaseModel):
    """One shape; ``x``/``y`` is its centre in [0, 1] image coordinates (y down)."""

    colour: str
    shape: str
    size: str
    x: float = Field(ge=0.0, le=1.0)
    y: float = Field(ge=0.0, le=1.0)

    @property
    def kind(self) -> tuple[str, str]:
        """The colour+shape key objects are matched and named by."""
        return (self.colour, self.shape)


class Relation(BaseModel):
    """``objects[subject]`` is ``relation`` ``objects[object]`` (indices into ``Scene.objects``)."""

    subject: int
    relation: str
    object: int


class Scene(BaseModel):
    """Objects (stored left to right by the generator) and the relations the scene states."""

    objects: list[SceneObject]
    relations: list[Relation] = Field(default_factory=list)

    def to_json(self, indent: int | None = None) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, s: str) -> "Scene":
        return cls.model_validate_json(s)

    @classmethod
    def build(cls, objects: list[SceneObject]) -> "Scene":
        """A scene from objects alone: sorts them left to right and derives the canonical relations."""
        ordered = sorted(objects, key=lambda o: (o.x, o.y))
        return cls(objects=ordered, relations=canonical_relations(ordered))

    def kind_counts(self) -> Counter[tuple[str, str]]:
        return Counter(o.kind for o in self.objects)

    def find(self, colour: str | None, shape: str | None, size: str | None = None) -> list[int]:
        """Indices of objects matching every attribute that is given (None matches anything)."""
        return [
            i
            for i, o in enumerate(self.objects)
            if (colour is None or o.colour == colour)
            and (shape is None or o.shape == shape)
            and (size is None or o.size == size)
        ]

    def is_unique(self, index: int) -> bool:
        return self.kind_counts()[self.objects[index].kind] == 1


def holds(a: SceneObject, relation: str, b: SceneObject) -> bool:
    """Whether ``a relation b`` is true, by the MIN_GAP rule (the definition used everywhere)."""
    if relation == "left of":
        return b.x - a.x >= MIN_GAP
    if relation == "right of":
        return a.x - b.x >= MIN_GAP
    if relation == "above":
        return b.y - a.y >= MIN_GAP
    if relation == "below":
        return a.y - b.y >= MIN_GAP
    raise ValueError(f"unknown relation {relation!r}")


def relation_between(a: SceneObject, b: SceneObject) -> str | None:
    """The relation a caption states for a pair: the axis with the larger separation wins."""
    dx, dy = b.x - a.x, b.y - a.y
    if abs(dy) > abs(dx) and abs(dy) >= MIN_GAP:
        return "above" if dy > 0 else "below"
    if abs(dx) >= MIN_GAP:
        return "left of" if dx > 0 else "right of"
    if abs(dy) >= MIN_GAP:
        return "above" if dy > 0 else "below"
    return None


def canonical_relations(objects: list[SceneObject], limit: int = 2) -> list[Relation]:
    """At most ``limit`` relations between consecutive (left to right) uniquely-named objects.

    Few and regular, because a ~1M-parameter captioner must learn to write them.
    """
    counts = Counter(o.kind for o in objects)
    unique = sorted((i for i, o in enumerate(objects) if counts[o.kind] == 1),
                    key=lambda i: (objects[i].x, objects[i].y))
    out: list[Relation] = []
    for i, j in itertools.pairwise(unique):
        rel = relation_between(objects[i], objects[j])
        if rel is not None and len(out) < limit:
            out.append(Relation(subject=i, relation=rel, object=j))
    return out


def compatible(a: SceneObject, b: SceneObject) -> bool:
    """No overlap, and on each axis either aligned or clearly apart (no ambiguous band)."""
    dx, dy = abs(a.x - b.x), abs(a.y - b.y)
    reach = (EXTENT[a.size] + EXTENT[b.size]) / 2 + PAD
    if dx < reach and dy < reach:
        return False
    return all(not (ALIGN_MAX < d < MIN_GAP) for d in (dx, dy))


def _pick_kind(rng: random.Random, placed: list[SceneObject]) -> tuple[str, str, str]:
    if placed and rng.random() < DUPLICATE_P:
        twin = rng.choice(placed)
        return twin.colour, twin.shape, twin.size
    colour, shape = rng.choice(COLOURS), rng.choice(SHAPES)
    same = [o for o in placed if o.kind == (colour, shape)]
    return colour, shape, same[0].size if same else rng.choice(SIZES)


def _place(rng: random.Random, colour: str, shape: str, size: str,
           placed: list[SceneObject], tries: int = 200) -> SceneObject | None:
    lo = EXTENT[size] / 2 + EDGE
    for _ in range(tries):
        x = round(rng.uniform(lo, 1 - lo), DECIMALS)
        y = round(rng.uniform(lo, 1 - lo), DECIMALS)
        obj = SceneObject(colour=colour, shape=shape, size=size, x=x, y=y)
        if all(compatible(obj, other) for other in placed):
            return obj
    return None


def generate_scene(rng: random.Random, n_objects: int | None = None) -> Scene:
    """A random scene of ``n_objects`` (default: uniform 1..4) objects; uses only ``rng``."""
    n = rng.randint(1, MAX_OBJECTS) if n_objects is None else n_objects
    if not 1 <= n <= MAX_OBJECTS:
        raise ValueError(f"n_objects must be in 1..{MAX_OBJECTS}, got {n}")
    for _ in range(1000):
        placed: list[SceneObject] = []
        for _ in range(n):
            obj = _place(rng, *_pick_kind(rng, placed), placed)
            if obj is None:
                break
            placed.append(obj)
        if len(placed) == n:
            return Scene.build(placed)
    raise RuntimeError("could not place objects")  # pragma: no cover - never seen in practice


def generate_scenes(seed: int, n: int) -> list[Scene]:
    """``n`` scenes, identical for the same ``seed`` on any machine."""
    rng = random.Random(seed)
    return [generate_scene(rng) for _ in range(n)]


def _star(cx: float, cy: float, r: float, inner: float = 0.45) -> list[tuple[float, float]]:
    pts = []
    for k in range(10):
        rad = r if k % 2 == 0 else r * inner
        ang = -math.pi / 2 + k * math.pi / 5
        pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang)))
    return pts


def _draw(draw: ImageDraw.ImageDraw, obj: SceneObject, side: int) -> None:
    cx, cy, r = obj.x * side, obj.y * side, EXTENT[obj.size] * side / 2
    fill = RGB[obj.colour]
    if obj.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif obj.shape == "square":
        s = r * 0.85  # a full-box square looks much heavier than the circle
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)], fill=fill)
    elif obj.shape == "star":
        draw.polygon(_star(cx, cy, r), fill=fill)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")


def render(scene: Scene, size: int = 64) -> Image.Image:
    """An RGB image of the scene; drawn 4x larger and box-filtered down, for clean anti-aliasing."""
    factor = 4 if size <= 256 else 2
    side = size * factor
    img = Image.new("RGB", (side, side), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        _draw(draw, obj, side)
    return img.resize((size, size), Image.Resampling.BOX)
