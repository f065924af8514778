"""Finished runs to build reports from, made by the real graph: a text run (the scripted scene model,
two rounds, one failed check fixed by refine) and an image run (the stand-in painter over HTTP,
judged by an oracle that reads what was painted). Shared by the report tests and the browser test."""

from __future__ import annotations

from typing import Any

from r3graph import R3Context, build_r3_graph
from r3graph.backends import make_backend
from r3graph.report import StageRecord, StageRecorder
from r3graph.serving.image_client import OmniImageClient
from r3graph_scenes.assets import EXAMPLE_PNG
from r3graph_scenes.paint_server import PaintServer

IMAGE_PROMPT = "a large red circle and a small blue square . the red circle is left of the blue square ."


async def _recorded(graph: Any, inputs: dict[str, Any], context: R3Context) -> tuple[dict[str, Any], list[StageRecord]]:
    recorder = StageRecorder()
    async for part in graph.astream(inputs, context=context, stream_mode=recorder.modes, subgraphs=True):
        recorder.observe(part)
    return recorder.result, recorder.stages


async def text_run(max_rounds: int = 2) -> tuple[dict[str, Any], dict[str, Any], list[StageRecord]]:
    backend = make_backend("scripted")
    graph = build_r3_graph(backend.model, pack=backend.pack).compile()
    inputs = {"instruction": "Describe the image.", "images": [str(EXAMPLE_PNG)]}
    result, stages = await _recorded(graph, inputs, R3Context(max_rounds=max_rounds))
    return inputs, result, stages


async def image_run() -> tuple[dict[str, Any], dict[str, Any], list[StageRecord]]:
    from tests.core.test_image_mode import oracle

    with PaintServer(error_rate=1.0, kinds=("wrong_colour",), seed=3) as server:
        images = OmniImageClient(server.url)
        try:
            graph = build_r3_graph(oracle(), pack="scenes", image_backend=images).compile()
            inputs = {"instruction": IMAGE_PROMPT}
            context = R3Context(output="image", reflect="judge", max_rounds=3)
            result, stages = await _recorded(graph, inputs, context)
        finally:
            await images.aclose()
    return inputs, result, stages
