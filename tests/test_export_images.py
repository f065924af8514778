"""Image-mode trajectory export: records with every round's PNG as a file (path + sha256), read back typed;
bad input fails before anything starts. The generator is the stand-in painter and the judge the oracle
(the truth, not a model), so no vLLM and a few seconds."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pytest

from r3graph import R3Context, build_r3_graph
from r3graph.export_cli import add_export_parser, run_export
from r3graph.export_images import (
    IMAGE_SCHEMA,
    ImageTrajectoryRecord,
    PromptItem,
    load_image,
    read_image_jsonl,
    read_prompts,
    run_image_prompts,
)
from r3graph.image_generation import ImageParams
from r3graph.serving.image_client import OmniImageClient
from r3graph_scenes.evaluation.image_quality import OracleImageJudge
from r3graph_scenes.paint_server import PaintServer
from r3graph_scenes.painter import decode_scene

PROMPTS = ["a large red circle and a small blue square . the red circle is left of the blue square .",
           "a small green star .", "a large yellow triangle and a small purple circle ."]


async def _collect(tmp_path: Path, error_rate: float) -> tuple[Path, list[ImageTrajectoryRecord]]:
    out = tmp_path / "runs.jsonl"
    out.write_text("")
    items = [PromptItem(i, p, 100 + i) for i, p in enumerate(PROMPTS)]
    with PaintServer(error_rate=error_rate, seed=3) as server:
        async with OmniImageClient(server.url) as client:
            graph = build_r3_graph(OracleImageJudge(), pack="scenes", image_backend=client).compile()
            records = await run_image_prompts(
                graph, items, out, model="oracle", pack="scenes", image_model="stand-in", concurrency=2,
                context_for=lambda seed: R3Context(output="image", reflect="judge", max_rounds=3,
                                                   image=ImageParams(seed=seed, size="64x64")))
    return out, records


async def test_every_round_is_a_file_named_by_path_and_hash_and_the_record_reads_back(tmp_path: Path) -> None:
    out, records = await _collect(tmp_path, error_rate=1.0)  # every first painting has a mistake
    back = sorted(read_image_jsonl(out), key=lambda r: r.index)
    assert [r.index for r in back] == [0, 1, 2] and [r.prompt for r in back] == PROMPTS
    assert sorted(records, key=lambda r: r.index) == back
    line = json.loads(out.read_text().splitlines()[0])
    assert line["schema"] == IMAGE_SCHEMA and "image" not in json.dumps(line["rounds"][0]["reflection"])
    for record in back:
        assert record.seed == 100 + record.index and record.settings["max_rounds"] == 3
        # A wrong first painting: the oracle asks for an edit, the exact editor fixes it, the oracle passes it.
        assert record.rounds[0].reflection is not None and record.rounds[0].reflection.verdict == "revise"
        assert record.stop_reason == "passed" and record.passed and record.rounds[-1].reflection.verdict == "pass"
        assert record.rounds[1].draft == record.rounds[0].reflection.critique  # the edit refine applied
        for r in record.rounds:
            assert r.image is not None and not Path(r.image.path).is_absolute()
            data = load_image(out, r.image)
            assert hashlib.sha256(data).hexdigest() == r.image.sha256 and len(data) == r.image.size_bytes
            assert decode_scene(data) is not None  # the stand-in's PNG, intact
        assert record.final == record.rounds[record.selected_round or 0].image  # one file, not a copy
        assert record.usage.image_calls == len(record.rounds)


async def test_a_changed_image_file_is_an_error_not_silently_other_pixels(tmp_path: Path) -> None:
    out, records = await _collect(tmp_path, error_rate=0.0)
    record = records[0]
    assert record.stop_reason == "passed" and len(record.rounds) == 1  # right at once: the judge passes it
    assert record.final is not None
    (out.parent / record.final.path).write_bytes(b"not the image")
    with pytest.raises(ValueError, match="sha256 does not match"):
        load_image(out, record.final)


def test_a_bad_line_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('\n{"schema": "r3graph.image_trajectory/1"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not an image trajectory record"):
        list(read_image_jsonl(path))


def test_prompts_get_consecutive_seeds_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("a red circle .\n\n  a blue star .  \n")
    assert read_prompts(path, 7) == [PromptItem(0, "a red circle .", 7), PromptItem(1, "a blue star .", 8)]
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="no prompts in it"):
        read_prompts(tmp_path / "empty.txt")


def _export(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    add_export_parser(ap.add_subparsers())
    return run_export(ap.parse_args(["export", *argv]))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prompts", "missing.txt", "--image-server", "stand-in"], "--prompts missing.txt: no such file"),
        (["--image-server", "stand-in"], "--output image needs --prompts FILE"),
        (["--prompts", "PROMPTS"], "--output image needs an image generator: --image-server"),
        (["--prompts", "PROMPTS", "--image-server", "ftp://x"], "--image-server 'ftp://x': pass 'learned'"),
        (["--prompts", "PROMPTS", "--image-server", "learned", "--image-model", "/nonexistent"],
         "--image-model /nonexistent: no model there"),
        (["--prompts", "PROMPTS", "--image-server", "stand-in", "--images", "x.png"], "drop --images"),
        (["--prompts", "PROMPTS", "--image-server", "stand-in", "--concurrency", "0"], "--concurrency must be"),
    ],
)
def test_bad_image_mode_input_fails_before_anything_starts(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle .\n")
    argv = [str(prompts) if a == "PROMPTS" else a for a in argv]
    out = tmp_path / "runs.jsonl"
    assert _export(["--output", "image", "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing ran, nothing written


def test_text_mode_still_needs_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _export(["--out", str(tmp_path / "runs.jsonl")]) == 2
    assert "--images PATH... is required" in capsys.readouterr().err


async def test_a_time_budget_of_zero_starts_no_run(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    out.write_text("")
    records = await run_image_prompts(object(), [PromptItem(0, PROMPTS[0], 0)], out, context_for=lambda seed: None,
                                      model="m", pack="scenes", image_model="g", max_seconds=0.0)
    assert records == [] and out.read_text() == ""


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.png", "runs.images/../../outside.png"])
def test_a_record_cannot_point_load_image_outside_its_folder(tmp_path: Path, path: str) -> None:
    from r3graph.export_images import ImageFile

    (tmp_path / "outside.png").write_bytes(b"x")
    inside = tmp_path / "data"
    inside.mkdir()
    with pytest.raises(ValueError, match="relative to the JSONL's folder"):
        load_image(inside / "runs.jsonl", ImageFile(path=path, sha256="0" * 64, size_bytes=1))


def test_a_symbolic_link_inside_the_folder_cannot_lead_load_image_outside_it(tmp_path: Path) -> None:
    import hashlib

    from r3graph.export_images import ImageFile

    secret = tmp_path / "outside.png"
    secret.write_bytes(b"secret bytes")
    inside = tmp_path / "data"
    (inside / "runs.images").mkdir(parents=True)
    (inside / "runs.images" / "0.png").symlink_to(secret)  # the lexical check sees a path inside
    record = ImageFile(path="runs.images/0.png", sha256=hashlib.sha256(b"secret bytes").hexdigest(), size_bytes=12)
    with pytest.raises(ValueError, match="outside the allowed image folder"):
        load_image(inside / "runs.jsonl", record)

