"""`make train`'s scheduler: two lanes side by side, the freed core handed over, a failure stops the rest."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from r3graph_scenes.train_all import Lane, Step, StepFailed, default_lanes, main, run_lanes


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_second_lane_waits_for_the_core_the_first_one_frees(tmp_path: Path) -> None:
    core_free = tmp_path / "core-free"
    seen = tmp_path / "seen"
    # Stands in for the generator: it notices the file appear while it runs, as --threads-later-when does.
    watcher = py(f"import pathlib, time\nfor _ in range(400):\n    if pathlib.Path({str(core_free)!r}).exists():\n"
                 f"        pathlib.Path({str(seen)!r}).write_text('yes'); break\n    time.sleep(0.05)")
    lanes = [Lane("understanding", [Step("vlm", py("import time; time.sleep(0.5); print('trained')"))],
                  done_file=core_free),
             Lane("generation", [Step("tokenizer", py("print('codes')")), Step("generator", watcher)])]
    minutes = asyncio.run(run_lanes(lanes))
    assert seen.read_text() == "yes"
    assert [r["name"] for r in lanes[1].records] == ["tokenizer", "generator"]
    assert all(r["returncode"] == 0 for lane in lanes for r in lane.records)
    tokenizer, generator = lanes[1].records
    assert tokenizer["ended_min"] <= generator["started_min"]
    assert 0 < minutes < 1


def test_a_failing_step_stops_the_other_lane_and_reports_its_exit_code(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    sleeper = py(f"import os, pathlib, time\npathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
                 "time.sleep(120)")
    waits_for_pid = py(f"import pathlib, sys, time\nwhile not pathlib.Path({str(pid_file)!r}).exists():\n"
                       "    time.sleep(0.05)\nsys.exit(3)")
    never = tmp_path / "never"
    lanes = [Lane("understanding", [Step("vlm", waits_for_pid), Step("after", py(f"open({str(never)!r}, 'w')"))]),
             Lane("generation", [Step("generator", sleeper)])]
    with pytest.raises(StepFailed) as failed:
        asyncio.run(run_lanes(lanes))
    assert failed.value.returncode == 3 and "vlm" in str(failed.value)
    assert [(r["name"], r["returncode"]) for r in lanes[0].records] == [("vlm", 3)]  # the schedule says which
    assert not never.exists()  # nothing after the failed step ran
    with pytest.raises(ProcessLookupError):  # the sleeper was stopped and reaped, not left behind
        os.kill(int(pid_file.read_text()), 0)


def test_the_default_recipe_hands_the_generator_the_core_the_vlm_frees(tmp_path: Path) -> None:
    understanding, generation = default_lanes(tmp_path, "python", tmp_path / "free")
    assert understanding.done_file == tmp_path / "free"
    vlm = understanding.steps[0].argv
    assert vlm[vlm.index("--threads") + 1] == "1" and vlm[vlm.index("--steps") + 1] == "2400"
    assert [s.name for s in generation.steps] == ["tokenizer", "scenes-imagegen"]
    gen = generation.steps[1].argv
    assert gen[gen.index("--threads-later-when") + 1] == str(tmp_path / "free")
    assert gen[gen.index("--out") + 1] == str(tmp_path / "scenes-imagegen")


def test_dry_run_prints_the_commands_without_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--models", str(tmp_path / "m"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "understanding:" in out and "r3graph_scenes.imagegen.train_tokenizer" in out
    assert not (tmp_path / "m").exists()
