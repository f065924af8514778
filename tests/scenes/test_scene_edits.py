import random
from collections import Counter

from r3graph_scenes import (
    ERROR_KINDS,
    answer_yes_no,
    caption,
    corrupt_caption,
    edit_instruction,
    generate_scenes,
    score_caption,
    yes_no_questions_for_caption,
)


def _worse(bad, good) -> bool:
    return (bad.f1 < good.f1 or bad.relation_accuracy < good.relation_accuracy
            or bad.attribute_accuracy < good.attribute_accuracy)


def test_corruptions_score_worse_and_get_an_edit():
    rng = random.Random(0)
    kinds: Counter[str] = Counter()
    for scene in generate_scenes(21, 300):
        truth = caption(scene)
        good = score_caption(truth, scene)
        assert edit_instruction(truth, scene) is None
        bad_text, kind = corrupt_caption(scene, rng)
        kinds[kind] += 1
        bad = score_caption(bad_text, scene)
        assert bad_text != truth
        assert not bad.exact_match and _worse(bad, good), (kind, bad_text, truth)
        assert edit_instruction(bad_text, scene) is not None
    assert set(kinds) == set(ERROR_KINDS)


def test_corruption_is_deterministic():
    scene = generate_scenes(2, 1)[0]
    assert corrupt_caption(scene, random.Random(4)) == corrupt_caption(scene, random.Random(4))


def test_edit_instructions_on_hand_made_scene(pair, crowd):
    assert edit_instruction("a large red circle and a small blue square .", pair) is None
    assert edit_instruction("a large red circle and a small green square .", pair) == (
        "change the green square to a small blue square")
    assert edit_instruction("a large red star and a small blue square .", pair) == (
        "change the red star to a large red circle")
    assert edit_instruction("a large red circle and a small blue square and a small green star .", pair) == (
        "remove the green star")
    assert edit_instruction("a large red circle .", pair) == "add a small blue square"
    assert edit_instruction("a small red circle and a small blue square .", pair) == (
        "change the small red circle to a large red circle")
    assert edit_instruction("a large red circle and a small blue square . the red circle is right of the blue square .",
                            pair) == "the red circle is left of the blue square"
    assert edit_instruction("a small red circle and a large blue square and a small green star .", crowd) == (
        "add a small red circle")
    assert edit_instruction("three small red circles and a large blue square and a small green star .", crowd) == (
        "remove one red circle")
    assert edit_instruction("two large red circles and a large blue square and a small green star .", crowd) == (
        "change the two large red circles to two small red circles")
    assert edit_instruction(caption(crowd) + " the red circle is above the blue square .", crowd) == (
        "remove the sentence the red circle is above the blue square")


def test_garbage_drafts_never_crash():
    """Model drafts early in training are word soup; every consumer must still answer."""
    vocab = ("a an two 2 no the small large big red green blue yellow purple orange circle circles square "
             "stars star triangle is are left right of above below on top to and . , ? not isn't").split()
    rng = random.Random(0)
    scenes = generate_scenes(4, 20)
    edits = 0
    for k in range(300):
        draft = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 25)))
        scene = scenes[k % len(scenes)]
        score = score_caption(draft, scene)
        assert 0.0 <= score.f1 <= 1.0 and 0.0 <= score.hallucination_rate <= 1.0
        edit = edit_instruction(draft, scene)
        assert (edit is None) == score.exact_match
        edits += edit is not None
        for q in yes_no_questions_for_caption(draft):
            assert answer_yes_no(q, scene) in ("yes", "no")
    assert edits > 250
