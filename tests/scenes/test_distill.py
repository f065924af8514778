"""Self-distillation data: only runs the judge passed, their final image (or, for the control, their first
draft), read back from the exported files."""

from __future__ import annotations

from pathlib import Path

from r3graph.export_images import load_image, read_image_jsonl
from r3graph_scenes.imagegen.distill import distill_pairs
from tests.test_export_images import _collect


async def test_pairs_are_the_passed_runs_final_or_first_images(tmp_path: Path) -> None:
    out, _ = await _collect(tmp_path, error_rate=1.0)
    records = list(read_image_jsonl(out))
    # Make one run a failure of the judge to pass: it must give no pair.
    failed = records[0].model_copy(update={"stop_reason": "max_rounds"})
    out.write_text("".join(r.dump_json() + "\n" for r in [failed, *records[1:]]))
    finals, firsts = distill_pairs(out, "final"), distill_pairs(out, "first")
    passed = [r for r in records[1:] if r.stop_reason == "passed"]
    assert len(passed) == 2 and [p for p, _ in finals] == [r.prompt for r in passed] == [p for p, _ in firsts]
    for (_, final), (_, first), r in zip(finals, firsts, passed, strict=True):
        assert r.final is not None and r.rounds[0].image is not None
        assert final == load_image(out, r.final) and first == load_image(out, r.rounds[0].image)
        assert final != first  # every first painting had a mistake that an edit fixed
