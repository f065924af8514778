"""Trajectory export: records round-trip through JSONL, pairs only where refine scored better."""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from r3graph import R3Context, R3Input, Round, build_r3_graph
from r3graph.backends import Backend
from r3graph.export import (
    SCHEMA,
    TrajectoryRecord,
    read_jsonl,
    read_pairs,
    to_preference_pairs,
    trajectory_record,
    write_jsonl,
)
from r3graph.export_cli import add_export_parser, run_export
from r3graph_scenes.assets import EXAMPLE_PNG, load_example
from r3graph_scenes.language import caption
from r3graph_scenes.scripted import ScriptedSceneModel
from r3graph_scenes.trajectories import scene_f1
from r3graph_scenes.world import Scene, generate_scene, render

INSTRUCTION = "Describe the image."


async def _record(model: ScriptedSceneModel, image: object = EXAMPLE_PNG, **context: object) -> TrajectoryRecord:
    ctx = R3Context(**context)
    inputs: R3Input = {"instruction": INSTRUCTION, "images": [image]}
    result = await build_r3_graph(model, pack="scenes").compile().ainvoke(inputs, context=ctx)
    return trajectory_record(inputs, result, model=model.model_name, pack="scenes", context=ctx,
                             ground_truth=load_example())


async def test_a_record_holds_the_whole_trajectory_and_round_trips(tmp_path: Path) -> None:
    record = await _record(ScriptedSceneModel(), max_rounds=2)
    image = record.input.images[0]
    assert image.ref == str(EXAMPLE_PNG) and image.mime == "image/png"
    assert image.sha256 == hashlib.sha256(EXAMPLE_PNG.read_bytes()).hexdigest()
    assert [r.verdict for r in record.rounds] == ["revise", "pass"]
    first = record.rounds[0].reflection
    assert first is not None and first.strategy == "self_questions"
    assert any(f.consistent is False for f in first.findings) and "(inconsistent)" in first.critique
    assert record.output == record.rounds[1].draft == caption(load_example())
    assert record.stop_reason == "passed" and record.usage.calls == 10 and record.selected_round == 1
    assert record.settings["max_rounds"] == 2 and record.settings["reflect"] == "self_questions"

    path = tmp_path / "runs.jsonl"
    assert write_jsonl([record, record.model_copy(update={"id": "second"})], path) == 2
    line = json.loads(path.read_text().splitlines()[0])
    assert line["schema"] == SCHEMA and line["ground_truth"]["kind"] == "scene"
    back = list(read_jsonl(path))
    assert back[0] == record and back[1].id == "second"
    assert isinstance(back[0].rounds[0], Round)
    assert back[0].rounds[0].reflection == record.rounds[0].reflection


async def test_images_given_as_bytes_or_data_urls_are_hashed_too() -> None:
    data = EXAMPLE_PNG.read_bytes()
    record = await _record(ScriptedSceneModel(), image=data, max_rounds=0)
    assert record.input.images[0].ref == "bytes"
    assert record.input.images[0].sha256 == hashlib.sha256(data).hexdigest()
    assert record.stop_reason == "one_shot" and record.rounds[0].reflection is None


async def test_pairs_only_where_the_refined_text_scores_better() -> None:
    improved = await _record(ScriptedSceneModel(), max_rounds=1)
    one_shot = await _record(ScriptedSceneModel(), max_rounds=0)
    truth = caption(load_example())
    # A run whose refine made things worse: swap the texts so the draft is the truth.
    worse = improved.model_copy(update={
        "id": "worse",
        "rounds": [improved.rounds[0].model_copy(update={"draft": truth}),
                   improved.rounds[1].model_copy(update={"draft": improved.rounds[0].draft})],
        "output": improved.rounds[0].draft,
    })
    no_truth = improved.model_copy(update={"id": "no-truth", "ground_truth": None})
    pairs = list(to_preference_pairs([improved, one_shot, worse, no_truth], scene_f1))
    assert [p.record_id for p in pairs] == [improved.id]
    (pair,) = pairs
    assert pair.chosen == truth and pair.rejected == improved.rounds[0].draft
    assert pair.chosen_score == 1.0 > pair.rejected_score
    assert pair.prompt["instruction"] == INSTRUCTION and pair.prompt["images"][0]["sha256"]

    steps = list(to_preference_pairs([improved], scene_f1, kind="step"))
    reflection = improved.rounds[0].reflection
    assert reflection is not None
    assert len(steps) == 1 and steps[0].prompt["critique"] == reflection.critique


def _scene_files(directory: Path, n: int) -> dict[str, Scene]:
    """n rendered scenes with ground-truth sidecars, and the scripted model's sha256 -> scene map."""
    rng = random.Random(7)
    scenes = {}
    for i in range(n):
        scene = generate_scene(rng, n_objects=2)
        png = directory / f"scene{i}.png"
        render(scene, 64).save(png)
        (directory / f"scene{i}.json").write_text(scene.to_json())
        scenes[hashlib.sha256(png.read_bytes()).hexdigest()] = scene
    return scenes


def test_the_export_command_writes_records_and_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    images = tmp_path / "images"
    images.mkdir()
    scenes = _scene_files(images, 3)
    # The scripted backend answers from each image's own scene, looked up by its hash.
    monkeypatch.setattr("r3graph.backends.make_backend", _scripted_backend(scenes))
    parser = argparse.ArgumentParser(prog="r3graph")
    add_export_parser(parser.add_subparsers(dest="command"))
    out, pairs = tmp_path / "runs.jsonl", tmp_path / "pairs.jsonl"
    args = parser.parse_args(["export", "--images", str(images), "--out", str(out), "--max-rounds", "2",
                              "--backend", "scripted", "--world", "r3graph_scenes.trajectories",
                              "--pairs", str(pairs)])
    assert run_export(args) == 0
    records = list(read_jsonl(out))
    assert [Path(r.input.images[0].ref).name for r in records] == ["scene0.png", "scene1.png", "scene2.png"]
    assert all(r.ground_truth and r.ground_truth.kind == "scene" for r in records)
    assert all(r.scores["output_f1"] == 1.0 for r in records)
    written = list(read_pairs(pairs))
    assert len(written) == sum(r.scores["draft_f1"] < 1.0 for r in records) > 0
    assert "SCRIPTED" in capsys.readouterr().err


def _scripted_backend(scenes: dict[str, Scene]) -> Callable[..., Backend]:
    from r3graph import backends

    real = backends.make_backend

    def make(kind: str, **kwargs: object) -> Backend:
        backend = real(kind, **kwargs)  # type: ignore[arg-type]
        backend.model.scenes = scenes  # type: ignore[attr-defined]
        return backend

    return make
