import itertools
import random

import numpy as np
import pytest
from PIL import Image

from r3graph_scenes import Scene, caption, generate_scene, generate_scenes, render
from r3graph_scenes.assets import EXAMPLE_256_PNG, EXAMPLE_PNG, example_scene, load_example
from r3graph_scenes.world import (
    ALIGN_MAX,
    BACKGROUND,
    EXTENT,
    MIN_GAP,
    PAD,
    RELATIONS,
    RGB,
    canonical_relations,
    holds,
)

SCENES = generate_scenes(seed=123, n=400)


def test_generation_is_deterministic_per_seed():
    assert generate_scenes(5, 30) == generate_scenes(5, 30)
    assert generate_scenes(5, 30) != generate_scenes(6, 30)
    a, b = random.Random(9), random.Random(9)
    assert [generate_scene(a, 3) for _ in range(5)] == [generate_scene(b, 3) for _ in range(5)]


def test_json_round_trip_is_exact():
    for scene in SCENES[:50]:
        assert Scene.from_json(scene.to_json()) == scene


def test_object_count_range_and_all_counts_occur():
    counts = {len(s.objects) for s in SCENES}
    assert counts == {1, 2, 3, 4}
    assert len(generate_scene(random.Random(0), n_objects=4).objects) == 4
    with pytest.raises(ValueError):
        generate_scene(random.Random(0), n_objects=5)


def test_objects_inside_image_without_overlap_or_ambiguity():
    for scene in SCENES:
        xs = [o.x for o in scene.objects]
        assert xs == sorted(xs)  # stored left to right
        for o in scene.objects:
            h = EXTENT[o.size] / 2
            assert h <= o.x <= 1 - h and h <= o.y <= 1 - h
        for a, b in itertools.combinations(scene.objects, 2):
            dx, dy = abs(a.x - b.x), abs(a.y - b.y)
            reach = (EXTENT[a.size] + EXTENT[b.size]) / 2 + PAD
            assert dx >= reach or dy >= reach  # bounding boxes apart
            for d in (dx, dy):
                assert d <= ALIGN_MAX or d >= MIN_GAP
            if a.kind == b.kind:
                assert a.size == b.size  # so "two small red circles" is exact


def test_relations_are_unambiguous():
    n_relations = 0
    for scene in SCENES:
        assert len(scene.relations) <= 2
        for r in scene.relations:
            n_relations += 1
            assert r.relation in RELATIONS
            assert scene.is_unique(r.subject) and scene.is_unique(r.object)
            a, b = scene.objects[r.subject], scene.objects[r.object]
            assert holds(a, r.relation, b)
            gap = abs(a.x - b.x) if r.relation in ("left of", "right of") else abs(a.y - b.y)
            assert gap >= MIN_GAP
    assert n_relations > 200


def test_duplicates_occur():
    assert sum(max(s.kind_counts().values()) > 1 for s in SCENES) > 40


def test_holds_and_canonical_relations_on_hand_made_scene(pair, crowd):
    red, blue = pair.objects
    assert holds(red, "left of", blue) and holds(blue, "right of", red)
    assert not holds(red, "above", blue) and not holds(red, "below", blue)
    assert [(r.subject, r.relation, r.object) for r in pair.relations] == [(0, "left of", 1)]
    # the two red circles are not unique: only blue square -> green star may be related
    assert [(r.subject, r.relation, r.object) for r in crowd.relations] == [(1, "left of", 3)]
    assert canonical_relations(crowd.objects) == crowd.relations


def test_render_sizes_and_colours(pair):
    small, big = render(pair), render(pair, 256)
    assert small.size == (64, 64) and small.mode == "RGB" and big.size == (256, 256)
    px = big.load()
    assert px[0, 0] == BACKGROUND
    for o in pair.objects:
        assert px[int(o.x * 256), int(o.y * 256)] == RGB[o.colour]


def test_shapes_differ_in_ink():
    def ink(shape: str) -> int:
        scene = Scene.build([generate_scene(random.Random(0), 1).objects[0].model_copy(
            update={"shape": shape, "size": "small", "x": 0.5, "y": 0.5})])
        arr = np.asarray(render(scene)).astype(int)
        return int((np.abs(arr - np.array(BACKGROUND)).sum(axis=2) > 60).sum())

    inks = {s: ink(s) for s in ("circle", "square", "triangle", "star")}
    assert len(set(inks.values())) == 4
    assert all(40 <= v <= 200 for v in inks.values()), inks  # ~12 px objects at 64 px


def test_bundled_example_matches_generator():
    scene = load_example()
    assert scene == example_scene()
    assert len(scene.objects) == 3 and len(scene.relations) == 2
    assert caption(scene) == (
        "a small yellow triangle and a small orange triangle and a large red star . "
        "the yellow triangle is above the orange triangle . the orange triangle is below the red star ."
    )
    for path, size in ((EXAMPLE_PNG, 64), (EXAMPLE_256_PNG, 256)):
        shipped = np.asarray(Image.open(path).convert("RGB")).astype(int)
        assert shipped.shape == (size, size, 3)
        assert np.abs(shipped - np.asarray(render(scene, size)).astype(int)).mean() < 1.0
