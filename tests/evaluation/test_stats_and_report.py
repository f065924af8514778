"""The harness's statistics and report on known data (the engine run is in test_quality_engine.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from r3graph.evaluation.stats import paired_bootstrap
from r3graph_scenes.evaluation.quality import ONE_SHOT, Condition, RunRecord, held_out_cases, reflect_accuracy
from r3graph_scenes.evaluation.report import markdown, plot, summarise
from r3graph_scenes.language import caption
from r3graph_scenes.metrics import score_caption


def test_bootstrap_recovers_a_known_difference() -> None:
    rng = random.Random(1)
    a = [rng.random() for _ in range(400)]
    b = [x + 0.1 + rng.gauss(0, 0.05) for x in a]
    diff = paired_bootstrap(a, b, seed=3)
    assert diff.low < 0.1 < diff.high
    assert abs(diff.mean - 0.1) < 0.01
    assert diff.high - diff.low < 0.03  # pairing removes the between-scene variance
    assert diff.significant


def test_bootstrap_of_no_difference_straddles_zero() -> None:
    rng = random.Random(2)
    a = [rng.random() for _ in range(300)]
    b = [x + rng.gauss(0, 0.1) for x in a]
    diff = paired_bootstrap(a, b)
    assert diff.low < 0 < diff.high and not diff.significant


def test_bootstrap_rejects_unpaired_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1.0], [1.0, 2.0])


def _record(condition: str, index: int, first: str, output: str, scene, reflection=None) -> RunRecord:
    return RunRecord(condition=condition, scene_index=index, output=output, first_draft=first, stop_reason="x",
                     rounds=[{"index": 0, "draft": first, "reflection": reflection}], calls=1, input_tokens=10,
                     output_tokens=5, cached_input_tokens=4, seconds=0.1, score=score_caption(output, scene),
                     first_score=score_caption(first, scene))


def test_summary_counts_fixes_regressions_and_pairs_against_one_shot(tmp_path: Path) -> None:
    cases = held_out_cases(4, seed=5)
    truths = [caption(c.scene) for c in cases]
    wrong = "a large purple star ."
    one_shot = [_record(ONE_SHOT.name, i, t if i < 2 else wrong, t if i < 2 else wrong, c.scene)
                for i, (c, t) in enumerate(zip(cases, truths, strict=True))]
    # R3 fixes scenes 2 and 3 and breaks scene 0
    r3_outputs = [wrong, truths[1], truths[2], truths[3]]
    r3 = [_record("self_questions d1", i, o.first_draft, r3_outputs[i], cases[i].scene) for i, o in enumerate(one_shot)]
    rows = summarise({ONE_SHOT.name: one_shot, "self_questions d1": r3}, {ONE_SHOT.name: 1.0, "self_questions d1": 2.0})
    base, row = rows
    assert base["exact_match"] == 0.5 and row["exact_match"] == 0.75
    assert row["fixes"] == 2 and row["regressions"] == 1
    assert row["delta_em"]["mean"] == pytest.approx(0.25)
    assert row["cached_share"] == pytest.approx(0.4)
    text = markdown(rows, {"command": "c", "model": "m", "pack": "p", "backend": "b", "scenes": 4, "seed": 5,
                           "machine": "x", "total_minutes": 0.0}, {"all": 0.9}, {})
    assert "| self_questions d1 | " in text and "2 / 1" in text
    plot(rows, [ONE_SHOT, Condition("self_questions d1")], tmp_path / "q.png")
    assert (tmp_path / "q.png").stat().st_size > 1000


def test_reflect_accuracy_reads_checks_against_the_truth() -> None:
    (case,) = held_out_cases(1, seed=11)
    obj = case.scene.objects[0]
    present = f"is there a {obj.colour} {obj.shape}?"
    findings = [
        {"question": present, "answer": "yes", "consistent": True},  # right
        {"question": present, "answer": "no", "consistent": False},  # wrong
        {"question": "how is the weather?", "answer": "no", "consistent": False},  # unreadable: skipped
    ]
    reflection = {"verdict": "revise", "findings": findings}
    record = _record("self_questions d1", 0, caption(case.scene), caption(case.scene), case.scene, reflection)
    acc = reflect_accuracy([record], [case])
    assert acc["checks"] == 2 and acc["check_accuracy"] == 0.5
    assert acc["verdict_accuracy"] == 0.0  # said revise about an exactly right draft
