"""The R3 graph end to end on real vLLM: the in-process engine and the HTTP server."""

from __future__ import annotations

import pytest

from tests.helpers import EXAMPLE_IMAGE


async def _run(model, pack: str) -> dict:
    from r3graph import R3Context, build_r3_graph

    graph = build_r3_graph(model, pack=pack).compile()
    events = [e async for e in graph.astream(
        {"instruction": "Describe the image.", "images": [str(EXAMPLE_IMAGE)]},
        context=R3Context(max_rounds=1, reflect="self_questions", num_questions=3),
        stream_mode="custom", subgraphs=True)]
    stages = {chunk["stage"] for _ns, chunk in events}
    assert {"reason", "reflect"} <= stages
    return await graph.ainvoke({"instruction": "Describe the image.", "images": [str(EXAMPLE_IMAGE)]},
                               context=R3Context(max_rounds=1))


def _pack(model_dir: str) -> str:
    return "scenes" if model_dir.rstrip("/").endswith("scenes-vlm") else "default"


@pytest.mark.engine
async def test_r3_on_engine(engine, model_dir: str) -> None:
    result = await _run(engine, _pack(model_dir))
    assert isinstance(result["output"], str) and result["rounds"]
    usage = result["usage"]
    assert usage.calls >= 3 and usage.input_tokens > 0 and usage.output_tokens > 0


@pytest.mark.server
async def test_r3_over_http(server, model_dir: str) -> None:
    from r3graph.serving import chat_model_for_server

    result = await _run(chat_model_for_server(server.url), _pack(model_dir))
    assert isinstance(result["output"], str) and result["rounds"]
    assert result["usage"].calls >= 3


@pytest.mark.engine
async def test_a_phone_photo_and_the_most_images_a_request_may_hold_run_on_the_engine(engine) -> None:
    """The input checks, the engine's limit_mm_per_prompt and the pixel guard agree: a 20-megapixel
    photo is scaled down (not refused) and a request with MAX_IMAGES_PER_REQUEST images runs."""
    import io

    from PIL import Image

    from r3graph import R3Context, build_r3_graph
    from r3graph.limits import MAX_IMAGES_PER_REQUEST

    buffer = io.BytesIO()
    Image.new("RGB", (5472, 3648), (90, 140, 200)).save(buffer, format="JPEG", quality=85)
    images = [buffer.getvalue()] + [str(EXAMPLE_IMAGE)] * (MAX_IMAGES_PER_REQUEST - 1)
    assert engine.max_images_per_prompt == MAX_IMAGES_PER_REQUEST
    graph = build_r3_graph(engine, pack="scenes").compile()
    result = await graph.ainvoke({"instruction": "Describe the image.", "images": images},
                                 context=R3Context(max_rounds=0))
    assert isinstance(result["output"], str) and result["usage"].calls == 1
