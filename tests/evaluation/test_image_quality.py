"""The image-mode evaluation (scenes/r3graph_scenes/evaluation/image_quality.py): the GenEval-style scorer on
hand-made paintings, and a tiny run against the real stand-in PaintServer with scripted judges
(the truth, and one that always passes), so no vLLM and a few seconds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from r3graph.serving.image_client import OmniImageClient
from r3graph_scenes.evaluation.image_categories import summarise_depths
from r3graph_scenes.evaluation.image_quality import (
    ONE_SHOT,
    ImageCondition,
    OracleImageJudge,
    held_out_prompts,
    judge_accuracy,
    run_image_condition,
    score_image,
    summarise_images,
)
from r3graph_scenes.paint_server import PaintServer
from r3graph_scenes.painter import encode_png
from r3graph_scenes.world import Scene, SceneObject
from tests.fakes import ScriptedChatModel

SIMPLE = "a large red circle and a small blue square . the red circle is left of the blue square ."


def obj(colour: str, shape: str, size: str, x: float, y: float) -> SceneObject:
    return SceneObject(colour=colour, shape=shape, size=size, x=x, y=y)


RIGHT = Scene.build([obj("red", "circle", "large", 0.25, 0.3), obj("blue", "square", "small", 0.75, 0.3)])


def aspects(prompt: str, scene: Scene) -> dict[str, object]:
    return score_image(prompt, scene).model_dump(exclude={"decoded"})


def test_a_right_painting_passes_every_aspect_and_png_bytes_read_the_same() -> None:
    assert all(aspects(SIMPLE, RIGHT).values())
    assert score_image(SIMPLE, encode_png(RIGHT, 64)) == score_image(SIMPLE, RIGHT)


@pytest.mark.parametrize(
    ("painted", "failed"),
    [
        # wrong colour: objects and colours; and positions, since the relation names "the blue
        # square", which is not there (as in GenEval, a position needs both objects)
        ([obj("red", "circle", "large", 0.25, 0.3), obj("green", "square", "small", 0.75, 0.3)],
         {"exact", "objects", "colours", "positions"}),
        # missing object: counts and objects; the colours of what is there are right
        ([obj("red", "circle", "large", 0.25, 0.3)], {"exact", "objects", "counts", "positions"}),
        # swapped positions: only the relation
        ([obj("red", "circle", "large", 0.75, 0.3), obj("blue", "square", "small", 0.25, 0.3)],
         {"exact", "positions"}),
        # wrong size: only sizes
        ([obj("red", "circle", "small", 0.25, 0.3), obj("blue", "square", "small", 0.75, 0.3)], {"exact", "sizes"}),
    ],
)
def test_each_mistake_fails_its_aspects_only(painted: list[SceneObject], failed: set[str]) -> None:
    got = aspects(SIMPLE, Scene.build(painted))
    assert {k for k, v in got.items() if v is False} == failed


def test_counts_ignore_colour_and_positions_apply_only_to_stated_relations() -> None:
    one_blue = Scene.build([obj("blue", "square", "small", 0.2, 0.2), obj("red", "square", "small", 0.7, 0.7)])
    score = score_image("two small blue squares .", one_blue)
    assert score.counts and not score.colours and not score.objects and score.positions is None


def test_an_image_that_is_no_painting_fails_everything() -> None:
    score = score_image(SIMPLE, b"not a png")
    assert not score.decoded and not any(v for v in score.model_dump(exclude={"decoded"}).values())
    assert score_image("a large red circle .", None).positions is None


async def test_a_tiny_run_pairs_conditions_and_the_oracle_fixes_every_mistake(server: PaintServer) -> None:
    cases = held_out_prompts(4)
    oracle = OracleImageJudge(targets={c.prompt: c.scene for c in cases})
    records = {}
    async with OmniImageClient(server.url) as client:
        for condition, model in ((ONE_SHOT, oracle), (ImageCondition("oracle judge d3", oracle=True), oracle)):
            records[condition.name] = await run_image_condition(model, "scenes", client, cases, condition, 1.0,
                                                                concurrency=2)
    rows = {r["condition"]: r for r in summarise_images(records, {})}
    oracle_row = rows["oracle judge d3"]
    assert oracle_row["paired"] and rows["one-shot"]["first_exact"] == oracle_row["first_exact"]
    assert rows["one-shot"]["exact"] < 1.0  # error rate 1: the stand-in got something wrong
    assert rows["oracle judge d3"]["exact"] == 1.0 and rows["oracle judge d3"]["regressions"] == 0
    assert rows["oracle judge d3"]["delta_exact"]["mean"] == 1.0 - rows["one-shot"]["exact"]
    judge = judge_accuracy(records["oracle judge d3"])
    assert judge["accuracy"] == 1.0 and judge["precision"] == 1.0 and judge["edit_exact"] == 1.0
    assert all(not r.judged for r in records["one-shot"]) and all(r.edits == [] for r in records["one-shot"])
    depths = summarise_depths(records)
    # Every round's image is scored: the oracle's last image is right, and a run that stopped early
    # keeps its last image at every later depth.
    assert [d["depth"] for d in depths] == [1, 2, 3][: len(depths)] and depths
    assert all(r.round_exact[0] == r.first_score.exact and r.round_exact[-1] == r.score.exact
               for r in records["oracle judge d3"])
    assert depths[-1]["exact"] == 1.0 and depths[-1]["delta_exact"]["mean"] == oracle_row["delta_exact"]["mean"]
    assert all(d["one_shot"] == rows["one-shot"]["exact"] for d in depths)


async def test_a_judge_that_always_passes_has_no_recall(server: PaintServer) -> None:
    cases = held_out_prompts(4)
    lazy = ScriptedChatModel(script=lambda text: json.dumps({"edit": "no further edit needed"}))
    async with OmniImageClient(server.url) as client:
        runs = await run_image_condition(lazy, "scenes", client, cases, ImageCondition("judge d3"), 1.0)
    judge = judge_accuracy(runs)
    assert judge["recall"] == 0.0 and judge["sentinel_on_wrong"] == 1.0
    assert all(r.stop_reason == "passed" and r.edits == [] and len(r.judged) == 1 for r in runs)
    assert all(r.score == r.first_score for r in runs)


@pytest.mark.engine
async def test_the_real_model_judges_and_edits_through_vllm(engine: Any) -> None:
    """The harness on the session's vLLM engine (scenes-vlm, or a tiny random Idefics3 without it):
    every run completes, conditions stay paired, and the model is really shown the images."""
    cases = held_out_prompts(4)
    conditions = [ONE_SHOT, ImageCondition("judge d3"), ImageCondition("self_questions d3", "self_questions")]
    with PaintServer(error_rate=0.7, seed=0) as srv:
        async with OmniImageClient(srv.url) as client:
            records = {c.name: await run_image_condition(engine, "scenes", client, cases, c, 0.7, concurrency=4)
                       for c in conditions}
    rows = summarise_images(records, {})
    assert all(row["paired"] and row["errors"] == 0 for row in rows), rows
    for name in ("judge d3", "self_questions d3"):
        assert all(r.calls >= 1 and r.judged for r in records[name])
        assert judge_accuracy(records[name])["n_correct"] + judge_accuracy(records[name])["n_wrong"] >= 4
