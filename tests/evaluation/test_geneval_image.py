"""Scoring from pixels and the GenEval-category prompt set in the image benchmark: the detector's scores
agree with the painted truth, sizes a prompt does not state are free, and a tiny run against the real
stand-in PaintServer with the oracle judge fixes every category (no vLLM; a few seconds)."""

from __future__ import annotations

import random

import pytest

from r3graph.serving.image_client import OmniImageClient
from r3graph_scenes.evaluation.image_categories import detector_accuracy, summarise_categories
from r3graph_scenes.evaluation.image_quality import (
    ONE_SHOT,
    ImageCondition,
    OracleImageJudge,
    geneval_cases,
    judge_accuracy,
    run_image_condition,
    same_edit,
    true_edit,
)
from r3graph_scenes.evaluation.image_scores import detector_agrees, score_image, score_spec
from r3graph_scenes.geneval_prompts import CATEGORIES
from r3graph_scenes.image_edits import MISTAKE_KINDS, make_mistake
from r3graph_scenes.language import parse_caption
from r3graph_scenes.paint_server import PaintServer
from r3graph_scenes.painter import encode_png, layout
from r3graph_scenes.world import Scene, SceneObject


def test_pixel_scores_equal_truth_scores_on_right_and_wrong_paintings() -> None:
    rng = random.Random(11)
    cases = geneval_cases(120)
    for case in cases:
        painted = layout(case.prompt, rng)
        mistake = make_mistake(painted, rng, MISTAKE_KINDS, case.prompt)
        for scene in (painted, mistake[0] if mistake else painted):
            png = encode_png(scene, 64)
            assert score_image(case.wanted, png) == score_spec(case.wanted, scene), case.prompt
            assert detector_agrees(png)
        assert score_spec(case.wanted, painted).exact


def test_an_unstated_size_is_free_and_a_stated_one_is_checked() -> None:
    small = Scene.build([SceneObject(colour="red", shape="circle", size="small", x=0.3, y=0.3)])
    assert score_image("a photo of a red circle", small).exact
    score = score_image("a photo of a large red circle", small)
    assert not score.exact and not score.sizes and score.objects


def test_the_oracle_passes_a_right_painting_of_an_unsized_prompt_and_fixes_a_wrong_one() -> None:
    prompt = "a photo of a red circle above a blue star"
    painted = layout(prompt, random.Random(1))
    target = layout(prompt, random.Random(2))  # possibly other sizes: they must not call for an edit
    assert true_edit(prompt, encode_png(painted, 64), target, parse_caption(prompt)) is None
    swapped = Scene.build([o.model_copy(update={"y": 1 - o.y}) for o in painted.objects])
    assert true_edit(prompt, encode_png(swapped, 64), target) == "the red circle is above the blue star"


async def test_a_tiny_geneval_run_breaks_down_by_category_and_the_oracle_fixes_all(server: PaintServer) -> None:
    cases = geneval_cases(18)
    oracle = OracleImageJudge(targets={c.prompt: c.scene for c in cases},
                              specs={c.prompt: c.spec for c in cases if c.spec is not None})
    records = {}
    async with OmniImageClient(server.url) as client:
        for condition in (ONE_SHOT, ImageCondition("oracle judge d3", oracle=True)):
            records[condition.name] = await run_image_condition(oracle, "scenes", client, cases, condition, 1.0,
                                                                concurrency=3)
    by_category = summarise_categories(records)
    assert list(by_category) == list(CATEGORIES)
    for category, rows in by_category.items():
        one_shot, oracle_row = rows
        assert one_shot["prompts"] == oracle_row["prompts"] == 3
        assert oracle_row["exact"] == 1.0 and oracle_row["regressions"] == 0, category
        assert oracle_row["delta_exact"]["mean"] == pytest.approx(1.0 - one_shot["exact"])
    assert sum(r["exact"] < 1.0 for r in (rows[0] for rows in by_category.values())) >= 3  # error rate 1: wrong
    assert judge_accuracy(records["oracle judge d3"])["edit_exact"] == 1.0
    reads = detector_accuracy([r for rs in records.values() for r in rs])
    assert reads["images"] >= 36 and reads["accuracy"] >= 0.95 and reads["final_score_agreement"] >= 0.95


def test_an_edit_is_exact_up_to_a_size_the_prompt_leaves_open() -> None:
    unsized, sized = parse_caption("a photo of two red stars"), parse_caption("two small red stars .")
    assert same_edit("add a large red star", "add a small red star", unsized)
    assert not same_edit("add a large red star", "add a small red star", sized)
    assert not same_edit("add a large blue star", "add a small red star", unsized)
    assert same_edit("no further edit needed", None, unsized) is False
