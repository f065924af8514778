"""The shipped learned generator end to end: `r3graph image-server` on the trained token-image model
(its own vLLM engine, a child process) generating and editing, judged by the real `scenes-vlm` on the
in-process engine, through the R3 graph and the unchanged OmniImageClient. Every image is read by
the pixel detector (never by the model).

Skipped only where the weights are not shipped (a checkout before `python -m
r3graph_scenes.imagegen.train` ran); the shipped repository has them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from r3graph import R3Context, build_r3_graph
from r3graph.image_generation import ImageParams
from r3graph.serving.image_client import OmniImageClient
from r3graph_scenes.evaluation.image_scores import read_image, score_image
from r3graph_scenes.geneval_prompts import geneval_prompts
from r3graph_scenes.language import parse_caption
from r3graph_scenes.plugin import SCENES_IMAGEGEN_DIR

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not (SCENES_IMAGEGEN_DIR / "config.json").is_file(),
                       reason="no trained generator shipped in scenes/r3graph_scenes/models/scenes-imagegen"),
]


@pytest.fixture(scope="module")
def learned_server() -> Iterator[Any]:
    from r3graph.serving.image_server import ImageServerProcess

    with ImageServerProcess(SCENES_IMAGEGEN_DIR) as server:
        yield server


async def test_the_learned_generator_draws_scenes_the_detector_reads(learned_server: Any) -> None:
    """24 GenEval-style prompts, one image each: every reply is a PNG the detector reads as a scene
    with objects, and the prompt's colours are there more often than chance allows."""
    prompts = geneval_prompts(24, seed=random.Random(7).randrange(10_000))
    async with OmniImageClient(learned_server.url) as client:
        images = [await client.agenerate(p.prompt, ImageParams(seed=i, size="64x64"))
                  for i, p in enumerate(prompts)]
    scenes = [read_image(png) for png in images]
    assert all(scene is not None and scene.objects for scene in scenes)
    wanted_colours = [{o.colour for o in p.spec.objects} for p in prompts]
    seen_colours = [{o.colour for o in scene.objects} for scene in scenes if scene is not None]
    # A generator that ignored the prompt (1-3 objects of 6 colours at random) would show all of a
    # prompt's colours in at most ~1/3 of images; P(X >= 15 | n=24, p=1/3) = 0.003.
    assert sum(w <= s for w, s in zip(wanted_colours, seen_colours, strict=True)) >= 15


async def test_a_short_r3_run_judged_by_scenes_vlm(learned_server: Any, engine: Any) -> None:
    """Generate, judge, edit (depth 2) with the real judge: every round is a new image or the loop
    says why it stopped, and each round's image is scored from its pixels."""
    prompt = "a red circle left of a blue square"
    async with OmniImageClient(learned_server.url) as client:
        graph = build_r3_graph(engine, pack="scenes", image_backend=client).compile()
        result = await graph.ainvoke({"instruction": prompt}, context=R3Context(
            output="image", reflect="judge", max_rounds=2, image=ImageParams(seed=3, size="64x64")))
    rounds = result["rounds"]
    assert rounds[0].image is not None and result["image"] == rounds[-1].image
    assert result["stop_reason"] in ("passed", "unverified", "max_rounds", "unchanged")
    for r in rounds:
        assert score_image(parse_caption(prompt), r.image).decoded  # a PNG the detector could read
