"""Output mode "image" with the real judge: scenes-vlm through vLLM (engine and HTTP server), the
stand-in generator over HTTP on 127.0.0.1. What the oracle-judge tests in tests/core cannot show:
that the shipped model, shown a painting, writes edits the editor can apply."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from r3graph_scenes.language import caption, parse_caption
from r3graph_scenes.metrics import score_caption
from r3graph_scenes.paint_server import PaintServer
from r3graph_scenes.painter import decode_scene
from r3graph_scenes.world import generate_scenes

# 16 held-out prompts (the evaluation seed, never trained on), one to three objects.
PROMPTS = [caption(s) for s in generate_scenes(12345, 40) if len(s.objects) <= 3][:16]


def _is_edit_sentence(text: str) -> bool:
    """An edit the stand-in's editor understands: it names at least one scene object."""
    return bool(parse_caption(text).objects)


@pytest.mark.engine
async def test_scenes_vlm_judges_paintings_and_its_edits_fix_some(engine, model_dir: str) -> None:
    from r3graph import R3Context, build_r3_graph
    from r3graph.image_generation import ImageParams
    from r3graph.serving.image_client import OmniImageClient

    if not model_dir.rstrip("/").endswith("scenes-vlm"):
        pytest.skip("needs the shipped scenes-vlm (trained on the image judge)")
    with PaintServer(error_rate=1.0, seed=5) as painter:
        async with OmniImageClient(painter.url) as images:
            graph = build_r3_graph(engine, pack="scenes", image_backend=images).compile()
            results = [
                await graph.ainvoke({"instruction": p}, context=R3Context(
                    output="image", reflect="judge", max_rounds=3, image=ImageParams(seed=i)))
                for i, p in enumerate(PROMPTS)
            ]
    first_right = final_right = caught = 0
    for prompt, result in zip(PROMPTS, results, strict=True):
        first, last = result["rounds"][0], result["rounds"][-1]
        assert len(result["rounds"]) <= 4 and result["image"] == result["rounds"][result["selected_round"]].image
        assert first.reflection is not None and first.reflection.verdict in ("pass", "revise")
        for r in result["rounds"][1:]:
            assert _is_edit_sentence(r.draft), r.draft  # the judge's edit, applied as written
        first_right += score_caption(prompt, decode_scene(first.image)).exact_match
        final_right += score_caption(prompt, decode_scene(last.image)).exact_match
        caught += first.reflection.verdict == "revise"
    assert first_right == 0  # every first painting has a mistake (error rate 1.0)
    # Measured with the shipped model: it flags 8/16 and fixes 4/16 (greedy, so the same every run;
    # bench/results/image_quality.md has the 200-prompt figures). A judge decoding garbage (as under
    # a JSON grammar) fixes none; the bounds sit at about 60% of the measured counts.
    assert caught >= 5, f"the judge flagged {caught}/{len(PROMPTS)} wrong paintings"
    assert final_right >= 2, f"R3 fixed {final_right}/{len(PROMPTS)} paintings"


@pytest.mark.server
def test_cli_generates_and_saves_every_round_over_http(server, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "r3graph.cli", "run", "--output", "image", "--base-url", server.url,
         "--instruction", PROMPTS[0], "--reflect", "judge", "--max-rounds", "2", "--seed", "3",
         "--image-server", "stand-in", "--stand-in-error-rate", "1.0", "--save-images", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    result = json.loads(out.stdout)  # one JSON object; image bytes are files, not JSON
    assert "stand-in" in out.stderr.lower()  # the CLI says the generator is a stand-in
    assert (tmp_path / "final.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for r in result["rounds"]:
        saved = Path(r["image"]["file"])
        assert saved.parent == tmp_path and saved.stat().st_size == r["image"]["bytes"]
    assert result["usage"]["image_calls"] == len(result["rounds"])
