import pytest

from r3graph_scenes import caption, format_caption, generate_scenes, parse_caption, scene_content

SCENES = generate_scenes(seed=7, n=400)


def kinds(text: str) -> dict[tuple[str, str], int]:
    return dict(parse_caption(text).kind_counts())


def rels(text: str) -> list[tuple[str | None, str, str, str | None, str]]:
    return [(r.subject.colour, r.subject.shape, r.relation, r.object.colour, r.object.shape)
            for r in parse_caption(text).relations]


def test_canonical_caption_of_hand_made_scenes(pair, crowd):
    assert caption(pair) == "a large red circle and a small blue square . the red circle is left of the blue square ."
    assert caption(crowd) == (
        "two small red circles and a large blue square and a small green star . "
        "the blue square is left of the green star ."
    )


def test_caption_parse_caption_round_trip():
    for scene in SCENES:
        text = caption(scene)
        parsed = parse_caption(text)
        assert parsed == scene_content(scene), text
        assert format_caption(parsed) == text


def test_captions_are_short_and_regular():
    lengths = [len(caption(s).split()) for s in SCENES]
    assert max(lengths) <= 40
    assert all(caption(s) == caption(s).lower() for s in SCENES)
    assert all(caption(s).endswith(" .") and "  " not in caption(s) for s in SCENES)


@pytest.mark.parametrize(("text", "expected"), [
    ("a red circle and an orange star", {("red", "circle"): 1, ("orange", "star"): 1}),
    ("There are 2 red circles and one blue square.", {("red", "circle"): 2, ("blue", "square"): 1}),
    ("two red circles", {("red", "circle"): 2}),
    ("three small violet stars", {("purple", "star"): 3}),
    ("Red circles.", {("red", "circle"): 2}),
    ("a circle that is red and a square which is blue", {("red", "circle"): 1, ("blue", "square"): 1}),
    ("a star in green", {("green", "star"): 1}),
    ("I can see a red circle next to a blue square", {("red", "circle"): 1, ("blue", "square"): 1}),
    ("The image shows a big, bright-yellow triangle.", {("yellow", "triangle"): 1}),
    ("there is no green star, only a pair of blue squares", {("blue", "square"): 2}),
    ("a red circle. The red circle is large.", {("red", "circle"): 1}),
    ("The red circle is on the left.", {("red", "circle"): 1}),  # a definite first mention counts once
    ("a red-coloured circle and a blue rectangle", {("red", "circle"): 1, ("blue", "square"): 1}),
    ("The picture contains shapes of many colours and a circle.", {}),  # no colour: not an object
    ("I don't see any blue squares, but there is a red circle.", {("red", "circle"): 1}),
    ("There isn't a green star; there are two red circles.", {("red", "circle"): 2}),
    ("a red circle but not a blue square", {("red", "circle"): 1}),
])
def test_paraphrase_objects(text, expected):
    assert kinds(text) == expected


def test_sizes_and_plurals():
    parsed = parse_caption("Two big red circles and a tiny blue square")
    assert [(o.colour, o.shape, o.size, o.count) for o in parsed.objects] == [
        ("red", "circle", "large", 2), ("blue", "square", "small", 1)]
    parsed = parse_caption("a large red circle and a small red circle")
    assert [(o.size, o.count) for o in parsed.objects] == [("large", 1), ("small", 1)]


@pytest.mark.parametrize(("text", "expected"), [
    ("the red circle is left of the blue square", [("red", "circle", "left of", "blue", "square")]),
    ("A red circle is to the left of a blue square.", [("red", "circle", "left of", "blue", "square")]),
    ("the red circle is on the right side of the blue square", [("red", "circle", "right of", "blue", "square")]),
    ("A green star sits on top of a yellow triangle", [("green", "star", "above", "yellow", "triangle")]),
    ("The orange star is beneath the purple circle.", [("orange", "star", "below", "purple", "circle")]),
    ("the circle is above the square", [(None, "circle", "above", None, "square")]),
    ("a red circle on the left of the image and a blue square", []),  # no object right after "of"
    ("a red circle on the left and a blue square on the right", []),
    ("a red circle is above and to the left of a blue square",
     [("red", "circle", "above", "blue", "square"), ("red", "circle", "left of", "blue", "square")]),
    ("a red circle is left of a blue square and above a green star",
     [("red", "circle", "left of", "blue", "square"), ("red", "circle", "above", "green", "star")]),
    ("a red circle is left of a blue square and the blue square is above a green star",
     [("red", "circle", "left of", "blue", "square"), ("blue", "square", "above", "green", "star")]),
    ("To the left of the blue square, there is a red circle.", [("red", "circle", "left of", "blue", "square")]),
    ("Above the green star is a yellow triangle", [("yellow", "triangle", "above", "green", "star")]),
])
def test_paraphrase_relations(text, expected):
    assert rels(text) == expected


def test_relation_mentions_do_not_double_count_objects():
    text = "A red circle is left of a blue square. The blue square is above the red circle."
    assert kinds(text) == {("red", "circle"): 1, ("blue", "square"): 1}
    assert len(rels(text)) == 2


def test_article_before_vowel():
    from r3graph_scenes.language import ParsedObject, object_phrase

    assert object_phrase(ParsedObject(colour="orange", shape="star")) == "an orange star"
    assert object_phrase(ParsedObject(colour="orange", shape="star", size="small")) == "a small orange star"
