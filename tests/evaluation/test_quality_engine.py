"""The quality harness end to end on the real in-process vLLM engine with the shipped model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from r3graph_scenes.evaluation.quality import (
    ONE_SHOT,
    Condition,
    held_out_cases,
    reflect_accuracy,
    run_condition,
    vqa_accuracy,
)
from r3graph_scenes.evaluation.report import markdown, plot, summarise

pytestmark = pytest.mark.engine


async def test_harness_runs_every_kind_of_condition_on_five_scenes(engine: Any, model_dir: str, tmp_path: Path) -> None:
    pack = "scenes" if "scenes" in Path(model_dir).name else "default"
    cases = held_out_cases(5)
    conditions = [ONE_SHOT, Condition("self_questions d1"), Condition("judge d1", "judge"),
                  Condition("refine w/o reflect d1", "none")]
    records = {c.name: await run_condition(engine, pack, cases, c, concurrency=5) for c in conditions}
    for condition in conditions:
        runs = records[condition.name]
        assert sorted(r.scene_index for r in runs) == [0, 1, 2, 3, 4]
        assert all(r.error is None for r in runs), [r.error for r in runs]
        assert all(r.calls >= 1 and r.output_tokens > 0 for r in runs)
    assert all(r.calls == 1 and len(r.rounds) == 1 for r in records[ONE_SHOT.name])
    # Greedy decoding: every condition's first draft is the one-shot answer on the same scene.
    one_shot = {r.scene_index: r.output for r in records[ONE_SHOT.name]}
    for runs in records.values():
        assert all(r.first_draft == one_shot[r.scene_index] for r in runs)
    reflected = records["self_questions d1"]
    assert all(r.rounds[0]["reflection"]["strategy"] == "self_questions" for r in reflected)
    rows = summarise(records, {c.name: 1.0 for c in conditions})
    assert {"delta_f1", "delta_em"} <= set(rows[1])
    vqa = await vqa_accuracy(engine, pack, cases, per_scene=2, concurrency=5)
    assert 0.0 <= vqa["all"] <= 1.0 and len(vqa) >= 3
    reflect = {name: reflect_accuracy(records[name], cases) for name in ("self_questions d1", "judge d1")}
    assert reflect["judge d1"]["verdicts"] == 5
    text = markdown(rows, {"command": "test", "model": Path(model_dir).name, "pack": pack, "backend": "engine",
                           "scenes": 5, "seed": 4242, "machine": "test", "total_minutes": 0.0}, vqa, reflect)
    assert text.count("\n| ") >= len(conditions) + 2
    plot(rows, conditions, tmp_path / "quality.png")
    assert (tmp_path / "quality.png").stat().st_size > 1000
