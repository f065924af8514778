import random

import pytest

from r3graph_scenes import (
    FAMILIES,
    Question,
    answer_yes_no,
    caption,
    generate_scenes,
    questions_for,
    verify_answer,
    yes_no_questions_for_caption,
)


def test_questions_on_hand_made_scene(crowd):
    qs = {q.family: q for q in questions_for(crowd, random.Random(0))}
    # circles are not unique; square and star are
    assert qs["colour"].text in ("what colour is the square?", "what colour is the star?")
    assert qs["colour"].answer == {"what colour is the square?": "blue", "what colour is the star?": "green"}[
        qs["colour"].text]
    # red is not unique
    assert qs["shape"].answer == {"blue": "square", "green": "star"}[qs["shape"].text.split()[4]]
    assert set(qs) == set(FAMILIES)


@pytest.mark.parametrize(("text", "answer"), [
    ("is there a red circle?", "yes"),
    ("is there a green circle?", "no"),
    ("is there a small red circle?", "yes"),
    ("is there a large red circle?", "no"),
    ("are there two red circles?", "yes"),
    ("are there 3 red circles?", "no"),
    ("is there one red circle?", "no"),  # a written number means exactly
    ("are there two small red circles?", "yes"),
    ("is the blue square left of the green star?", "yes"),
    ("is the blue square right of the green star?", "no"),
    ("is the blue square below the green star?", "no"),  # aligned: neither above nor below
    ("is the green star below the red circle?", "no"),  # two red circles: unresolvable
    ("is the square to the left of the star?", "yes"),
    ("what is this?", "no"),
])
def test_answer_yes_no(crowd, text, answer):
    assert answer_yes_no(text, crowd) == answer


def test_count_answers_are_number_words(crowd):
    counts = {}
    rng = random.Random(1)
    for _ in range(60):
        for q in questions_for(crowd, rng, n=5):
            if q.family == "count":
                counts[q.text] = q.answer
    assert counts["how many circles are there?"] == "two"
    assert counts["how many squares are there?"] == "one"
    assert counts.get("how many triangles are there?", "zero") == "zero"


def test_generated_questions_are_consistent():
    rng = random.Random(0)
    seen = set()
    for scene in generate_scenes(11, 150):
        for q in questions_for(scene, rng, n=6):
            seen.add(q.family)
            assert len(questions_for(scene, random.Random(0), n=6)) == 6
            assert verify_answer(q, q.answer)
            if q.family in ("existence", "relation"):
                assert answer_yes_no(q.text, scene) == q.answer, q
    assert seen == set(FAMILIES)


@pytest.mark.parametrize(("family", "answer", "reply", "ok"), [
    ("existence", "yes", "Yes, there is.", True),
    ("existence", "yes", "YES", True),
    ("existence", "no", "No, there isn't any.", True),
    ("existence", "no", "yes", False),
    ("relation", "no", "It is not.", True),
    ("relation", "no", "It isn't.", True),
    ("relation", "yes", "It is left of it.", True),
    ("existence", "yes", "There is.", True),
    ("existence", "yes", "There isn't one.", False),
    ("existence", "yes", "maybe", False),
    ("count", "two", "2", True),
    ("count", "two", "There are two circles.", True),
    ("count", "two", "3", False),
    ("count", "zero", "There are no circles", True),
    ("count", "one", "a single one", True),
    ("count", "one", "There is a circle.", True),
    ("count", "two", "There is a circle and another two.", True),
    ("colour", "red", "It's RED!", True),
    ("colour", "red", "blue", False),
    ("shape", "circle", "a circle.", True),
    ("shape", "circle", "Circles", True),
    ("shape", "circle", "square", False),
])
def test_verify_answer_tolerance(family, answer, reply, ok):
    assert verify_answer(Question(family=family, text="?", answer=answer), reply) is ok


def test_yes_no_questions_for_caption(pair):
    text = "two small red circles and an orange star . the red circle is left of the orange star ."
    assert yes_no_questions_for_caption(text) == [
        "are there two small red circles?",
        "is there an orange star?",
        "is the red circle left of the orange star?",
    ]
    for scene in generate_scenes(5, 100):
        assert {answer_yes_no(q, scene) for q in yes_no_questions_for_caption(caption(scene))} == {"yes"}
    wrong = "a large red circle and a small blue square . the red circle is above the blue square ."
    assert [answer_yes_no(q, pair) for q in yes_no_questions_for_caption(wrong)] == ["yes", "yes", "no"]
