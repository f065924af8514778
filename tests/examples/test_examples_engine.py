"""The tool example with R3 on the real in-process vLLM engine (the agent LLM stays scripted)."""

from __future__ import annotations

import pytest

from r3graph.serving.env import apply_vllm_env_defaults, project_cache_dir
from r3graph_scenes.plugin import SCENES_VLM_DIR
from tests.examples.loader import load_example


def engine_model_dir() -> str | None:
    """The shipped model, else the tiny random-weight Idefics3 the serving tests build; None: skip."""
    if (SCENES_VLM_DIR / "config.json").is_file():
        return str(SCENES_VLM_DIR)
    cache = project_cache_dir()
    tiny = cache / "tiny-idefics3" if cache else None
    return str(tiny) if tiny and (tiny / "config.json").is_file() else None


@pytest.mark.engine
def test_r3_as_tool_on_the_engine(capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = engine_model_dir()
    if model_dir is None:
        pytest.skip("no model: neither scenes/r3graph_scenes/models/scenes-vlm nor .cache/tiny-idefics3")
    apply_vllm_env_defaults()
    assert load_example("r3_as_tool").main(["--engine", "--model", model_dir]) == 0  # shuts the engine down
    out = capsys.readouterr().out
    assert "R3 model inside the tool: in-process vLLM engine" in out
    tool_line = next(line for line in out.splitlines() if line.startswith(" tool: "))
    assert "refused" not in tool_line
    assert "(R3: " in out or "R3 failed" in out  # random tiny weights may write nothing usable
