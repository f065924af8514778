"""``r3graph run`` as a person meets it: bad input fails at once in one line with exit status 2
(before any backend exists), a run shows only its stages and a summary while library noise goes to
a log file, a failed run shows the log and a short error with exit status 1, and ``--report`` writes
the report (of the work done, when it failed). The real engine's noise: tests/serving/test_cli_engine.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import r3graph.cli as cli
from r3graph_scenes.assets import EXAMPLE_PNG
from tests.cli_scripted import NOISE
from tests.helpers import CHILD_PYTHONPATH

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = str(EXAMPLE_PNG)


def _no_backend(args: Any) -> Any:
    raise AssertionError("a backend was made before the input was checked")


@pytest.mark.parametrize(("argv", "says"), [
    (["--image", "missing.png"], "--image missing.png: no such image file"),
    (["--image", "README.md"], "--image README.md: not a readable image"),
    (["--image", EXAMPLE, "--max-rounds", "-1"], "--max-rounds: Input should be greater than or equal to 0"),
    (["--image", EXAMPLE, "--reflect", "judg"], "unknown reflect strategy 'judg': use one of"),
    (["--image", EXAMPLE, "--instruction", "  "], "--instruction is empty"),
    (["--image", EXAMPLE, "--pack", "nope"], "unknown prompt pack 'nope'"),
    (["--image", EXAMPLE, "--model", "/nonexistent"], "--model /nonexistent: no model there"),
    (["--image", EXAMPLE, "--base-url", "localhost:8000"], "--base-url 'localhost:8000' is not an http(s) URL"),
    (["--image", EXAMPLE, "--report", "/nonexistent/r.html"], "--report /nonexistent/r.html: the folder"),
    ([], "--image FILE is required"),
    (["--output", "image", "--image", EXAMPLE], "--output image generates from --instruction alone"),
    (["--output", "image", "--size", "12"], "--size: Value error, size must look like '512x512'"),
    (["--output", "image", "--image-server", "ftp://x"], "--image-server 'ftp://x': pass 'learned', 'stand-in'"),
])
def test_bad_input_fails_before_any_backend_in_one_line(
        argv: list[str], says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "_backend_for", _no_backend)
    assert cli.main(["run", *argv]) == cli.EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"r3graph: {says}"), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_serve_checks_its_model_before_starting_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--model", "/nonexistent"]) == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err == "r3graph: --model /nonexistent: no model there (config.json missing); " \
                                      "pass an HF-format model directory\n"


def scripted_run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"R3GRAPH_LOG_DIR": str(tmp_path / "logs"), "PYTHONPATH": CHILD_PYTHONPATH, "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "tests.cli_scripted", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def the_log(tmp_path: Path) -> str:
    (log,) = (tmp_path / "logs").iterdir()
    return log.read_text()


def test_a_run_shows_stages_and_a_summary_and_sends_library_noise_to_the_log(tmp_path: Path) -> None:
    report = tmp_path / "run.html"
    done = scripted_run(tmp_path, "--noise", "run", "--image", EXAMPLE, "--max-rounds", "2", "--report", str(report))
    assert done.returncode == 0, done.stderr
    shown = done.stdout + done.stderr
    assert not [n for n in NOISE if n in shown], shown
    assert all(n in the_log(tmp_path) for n in NOISE)  # Python, logging, print and a child process
    lines = done.stdout.splitlines()
    assert lines[0].startswith("r3graph: engine and library logs: ") and str(tmp_path / "logs") in lines[0]
    assert [line.split("]")[1].split(":")[0].strip() for line in lines if line.startswith("[round")] == \
        ["reason", "check 1", "check 2", "check 3", "reflect", "refine", "check 1", "check 2", "check 3", "reflect"]
    stats = next(line for line in lines if line.startswith("stop: "))
    assert "stop: passed  rounds: 2  calls: 10  tokens: " in stats and " cached), " in stats and "time: " in stats
    assert lines[-1] == f"r3graph: report: {report}" and 'data-round="1"' in report.read_text()
    assert len(lines) <= 24


def test_json_keeps_stdout_for_the_one_result_object(tmp_path: Path) -> None:
    done = scripted_run(tmp_path, "--noise", "run", "--image", EXAMPLE, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # nothing else on stdout, the noise included
    assert result["stop_reason"] == "max_rounds" and len(result["rounds"]) == 2
    assert not [n for n in NOISE if n in done.stderr]


def test_a_failed_run_shows_the_log_then_the_error_and_keeps_the_work_in_the_report(tmp_path: Path) -> None:
    report = tmp_path / "failed.html"
    # calls: reason, questions, 3 answers, then refine (the 6th) fails
    done = scripted_run(tmp_path, "--noise", "--fail-at", "6", "run", "--image", EXAMPLE, "--report", str(report))
    assert done.returncode == 1
    err = done.stderr.splitlines()
    assert all(n in done.stderr for n in NOISE)  # the log, shown in full because the run failed
    assert err[-2] == "r3graph: refine: model call failed: RuntimeError: engine core died (simulated)"
    assert err[-1].startswith("r3graph: best draft before the failure (round 0): a small yellow triangle")
    assert "Traceback" not in done.stdout + done.stderr.split("engine core died")[-1]
    page = report.read_text()
    assert "the run failed:" in page and 'data-round="0"' in page and 'data-round="1"' not in page


def test_verbose_shows_library_noise_where_it_happens(tmp_path: Path) -> None:
    done = scripted_run(tmp_path, "--noise", "run", "--image", EXAMPLE, "--verbose")
    assert done.returncode == 0 and all(n in done.stdout + done.stderr for n in NOISE)
    assert not (tmp_path / "logs").exists()


def test_a_phone_photo_of_20_megapixels_runs(tmp_path: Path) -> None:
    """A 5000x4000 JPEG (a phone camera's size) is scaled down while decoding, not refused."""
    import numpy as np
    from PIL import Image

    gradient = np.linspace(0, 255, 4000, dtype=np.uint8)
    pixels = np.stack([np.tile(gradient, (5000, 1))] * 3, axis=-1)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(pixels).save(photo, quality=90)
    with Image.open(photo) as img:
        assert img.size[0] * img.size[1] == 20_000_000
    done = scripted_run(tmp_path, "run", "--image", str(photo), "--max-rounds", "1")
    assert done.returncode == 0, done.stderr
    assert "stop:" in done.stdout
