"""What the scene-world plugin adds to the CLI, used as a person would: ``--image-server stand-in``
(the plugin's image server) and ``paint-server`` (the plugin's command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import CHILD_PYTHONPATH, REPO
from tests.test_cli_run import scripted_run

PROMPT = "a red circle and a blue square . the red circle is left of the blue square ."


def test_the_stand_in_image_server_comes_from_the_plugin(tmp_path: Path) -> None:
    done = scripted_run(tmp_path, "run", "--output", "image", "--image-server", "stand-in", "--instruction", PROMPT,
                        "--reflect", "judge", "--max-rounds", "1", "--json")
    assert done.returncode == 0, done.stderr
    assert "image generator: http://127.0.0.1:" in done.stderr and "it is not a model" in done.stderr
    first = json.loads(done.stdout)["rounds"][0]
    assert first["draft"] == PROMPT and first["image"]["bytes"] > 0


def test_paint_server_is_the_plugin_command() -> None:
    env = os.environ | {"PYTHONPATH": CHILD_PYTHONPATH}
    server = subprocess.Popen([sys.executable, "-m", "r3graph.cli", "paint-server", "--port", "0"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[0]  # "<url>  (notice); Ctrl-C stops it"
        models = httpx.get(f"{url}/models", timeout=10, trust_env=False).json()
        assert models["data"], models
    finally:
        server.terminate()
        server.wait(timeout=30)
