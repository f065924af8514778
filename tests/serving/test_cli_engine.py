"""`make demo` as a person sees it: the real `r3graph run` on the bundled scene with the in-process vLLM
engine prints its stages and a summary on one screen, with every vLLM, torch and transformers line
(from this process and the engine's child processes) in the log file instead; `--report` writes a
page that renders in Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import Chromium, find_chromium
from tests.helpers import EXAMPLE_IMAGE

pytestmark = [pytest.mark.engine, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
# What the demo printed before the logs moved (vLLM's WARNING lines, Triton, transformers' warnings,
# NUMA binding, tqdm's checkpoint loading, Python warnings).
NOISE = re.compile(r"WARNING|Warning|Triton|\[transformers\]|NUMA|pid=|safetensors|Traceback")


def test_the_demo_fits_on_one_screen_and_its_report_renders(tmp_path: Path, model_dir: str) -> None:
    report = tmp_path / "demo.html"
    env = os.environ | {"R3GRAPH_LOG_DIR": str(tmp_path / "logs"), "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "r3graph.cli", "run", "--image", str(EXAMPLE_IMAGE),
                           "--model", model_dir, "--report", str(report)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = (done.stdout + done.stderr).splitlines()
    assert len(shown) <= 24, "\n".join(shown)
    assert [line for line in shown if NOISE.search(line)] == []
    (log,) = (tmp_path / "logs").iterdir()
    assert shown[0] == f"r3graph: engine and library logs: {log} (--verbose shows them here)"
    logged = log.read_text()
    assert "(EngineCore" in logged and "WARNING" in logged  # the child process's lines landed here
    assert any(line.startswith("r3graph: engine ready in ") for line in shown)
    assert any(line.startswith("[round 0] reason: ") for line in shown)
    assert any(line.startswith("stop: ") and " calls: " in line for line in shown)
    binary = find_chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (`make browser`): the demo report was not opened in a browser")
    browser = Chromium(binary)
    try:
        page = browser.check(report)
    finally:
        browser.close()
    assert page.console_errors == [] and page.requests == [report.resolve().as_uri()]
    assert page.info["rounds"] and page.info["rounds"][0] == 0 and page.info["final"]
    (image,) = page.info["images"]
    assert (image["naturalWidth"], image["naturalHeight"]) == (64, 64) and image["complete"]
