import pytest

from r3graph_scenes import aggregate, caption, generate_scenes, score_caption

TRUTH = "a large red circle and a small blue square . the red circle is left of the blue square ."


def test_perfect(pair):
    s = score_caption(TRUTH, pair)
    assert (s.precision, s.recall, s.f1, s.attribute_accuracy, s.relation_accuracy) == (1, 1, 1, 1, 1)
    assert s.exact_match and s.hallucination_rate == 0.0
    assert (s.n_mentioned, s.n_true, s.n_matched, s.n_size_correct, s.n_relations, s.n_relations_true) == (
        2, 2, 2, 2, 1, 1)


def test_missing_object(pair):
    s = score_caption("a large red circle .", pair)
    assert (s.precision, s.recall) == (1.0, 0.5)
    assert s.f1 == pytest.approx(2 / 3)
    assert s.attribute_accuracy == 1.0 and s.relation_accuracy == 1.0  # no relation stated
    assert not s.exact_match and s.hallucination_rate == 0.0


def test_hallucinated_object(pair):
    s = score_caption("a large red circle and a small blue square and a small green star .", pair)
    assert s.precision == pytest.approx(2 / 3) and s.recall == 1.0
    assert s.hallucination_rate == pytest.approx(1 / 3)
    assert (s.n_kinds_mentioned, s.n_kinds_hallucinated) == (3, 1)
    assert not s.exact_match


def test_overcount_is_not_a_hallucination(pair):
    s = score_caption("two large red circles and a small blue square .", pair)
    assert s.precision == pytest.approx(2 / 3) and s.hallucination_rate == 0.0 and not s.exact_match


def test_wrong_relation(pair):
    s = score_caption("a large red circle and a small blue square . the red circle is right of the blue square .",
                      pair)
    assert s.f1 == 1.0 and s.relation_accuracy == 0.0 and not s.exact_match
    s = score_caption(TRUTH + " the red circle is above the blue square .", pair)
    assert s.relation_accuracy == 0.5


def test_unresolvable_relation_counts_wrong(pair, crowd):
    assert score_caption(TRUTH + " the green star is left of the blue square .", pair).relation_accuracy == 0.5
    # two red circles: "the red circle" names no single object
    assert score_caption("the red circle is above the blue square", crowd).relation_accuracy == 0.0
    assert score_caption("the square is left of the star", crowd).relation_accuracy == 1.0


def test_wrong_or_missing_size(pair):
    s = score_caption("a small red circle and a small blue square .", pair)
    assert s.attribute_accuracy == 0.5 and s.f1 == 1.0 and not s.exact_match
    s = score_caption("a red circle and a blue square .", pair)
    assert s.attribute_accuracy == 0.0 and not s.exact_match


def test_empty_caption(pair):
    s = score_caption("", pair)
    assert (s.precision, s.recall, s.f1, s.hallucination_rate, s.relation_accuracy) == (0, 0, 0, 0, 1)
    assert not s.exact_match


def test_free_vlm_text(crowd):
    text = ("In this image I can see two red circles at the top. Below them there is a large blue square, "
            "and to the right of the blue square a small green star. There is also a yellow triangle.")
    s = score_caption(text, crowd)
    assert (s.n_mentioned, s.n_matched, s.n_true) == (5, 4, 4)
    assert s.hallucination_rate == pytest.approx(1 / 4)


def test_all_canonical_captions_are_exact():
    for scene in generate_scenes(3, 200):
        assert score_caption(caption(scene), scene).exact_match


def test_aggregate(pair):
    scores = [score_caption(TRUTH, pair), score_caption("a large red circle .", pair)]
    agg = aggregate(scores)
    assert agg["exact_match"] == 0.5
    assert agg["recall"] == 0.75 and agg["precision"] == 1.0
    assert agg["micro_recall"] == 0.75 and agg["micro_precision"] == 1.0
    assert agg["micro_f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert agg["n"] == 2.0
    assert aggregate([]) == {}
