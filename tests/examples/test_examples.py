"""Each example runs end to end (scripted model unless marked engine) and shows what it claims."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r3graph.backends import make_backend
from r3graph_scenes.assets import EXAMPLE_PNG, load_example
from r3graph_scenes.language import caption
from tests.examples.loader import EXAMPLES
from tests.examples.loader import load_example as example
from tests.helpers import CHILD_PYTHONPATH

TRUTH = caption(load_example())
REPO = EXAMPLES.parent


def test_every_example_is_a_runnable_script_with_main() -> None:
    scripts = sorted(EXAMPLES.glob("*.py"))
    assert {p.stem for p in scripts} >= {"r3_as_node", "r3_as_tool", "checkpoint_resume", "human_review"}
    for script in scripts:
        tree = ast.parse(script.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), script
        assert 'if __name__ == "__main__":' in script.read_text(), script


# -- r3_as_node ------------------------------------------------------------------------------------
async def test_the_parent_picks_the_depth_and_streams_r3_events_through() -> None:
    node = example("r3_as_node")
    request = {"instruction": "Describe the image.", "images": [str(EXAMPLE_PNG)], "priority": "high"}
    events, final = await node.run(make_backend("scripted"), request, show=lambda line: None)
    assert final["max_rounds"] == 3 and final["answer"] == TRUTH and final["stop_reason"] == "passed"
    stages = [(where, e["stage"]) for where, e in events]
    assert ("describe", "reason") in stages and ("describe", "refine") in stages
    assert ("describe", "final") in stages and ("describe", "answer") in stages  # checks are R3 nodes

    events, final = await node.run(make_backend("scripted"),
                                   {"instruction": "Quick look: what is there?", "images": [str(EXAMPLE_PNG)]},
                                   show=lambda line: None)
    assert final["max_rounds"] == 0 and final["model_calls"] == 1
    assert [e["stage"] for _, e in events] == ["reason", "final"]


def test_r3_as_node_main(capsys: pytest.CaptureFixture[str]) -> None:
    assert example("r3_as_node").main(["--priority", "normal"]) == 0
    out = capsys.readouterr().out
    assert "SCRIPTED" in out and "max_rounds=1" in out and "[describe] refine" in out and TRUTH in out


# -- r3_as_tool ------------------------------------------------------------------------------------
async def test_the_agent_calls_the_r3_tool_and_answers_with_its_result() -> None:
    tool_example = example("r3_as_tool")
    messages = await tool_example.ask(make_backend("scripted"), "Please describe example.png carefully.")
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[1].tool_calls[0]["name"] == "describe_image_carefully"
    assert TRUTH in messages[2].content and "stopped: passed" in messages[2].content
    assert messages[3].content.startswith("[scripted agent]") and TRUTH in messages[3].content


async def test_the_tool_refuses_paths_outside_its_folder(tmp_path: Path) -> None:
    tool_example = example("r3_as_tool")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "ok.png").write_bytes(EXAMPLE_PNG.read_bytes())
    (allowed / "notes.txt").write_text("not an image")
    outside = tmp_path / "secret.png"
    outside.write_bytes(EXAMPLE_PNG.read_bytes())
    (allowed / "link.png").symlink_to(outside)
    tool = tool_example.make_describe_tool(make_backend("scripted"), allowed)
    args = {"instruction": "Describe the image.", "max_rounds": 99}
    for image in ["../secret.png", str(outside), "link.png", "notes.txt", "missing.png", "/etc/passwd"]:
        answer = await tool.ainvoke({**args, "image": image})
        assert answer.startswith("refused:"), (image, answer)
    answer = await tool.ainvoke({**args, "image": "ok.png"})
    assert answer.startswith(TRUTH) and "2 round(s)" in answer  # max_rounds 99 clamped; passed at round 1
    assert tool_example.make_describe_tool(make_backend("scripted")).description.count("UNTRUSTED") == 1


def test_r3_as_tool_main(capsys: pytest.CaptureFixture[str]) -> None:
    assert example("r3_as_tool").main([]) == 0
    out = capsys.readouterr().out
    assert "agent LLM: SCRIPTED" in out and "R3 model inside the tool: SCRIPTED" in out and TRUTH in out


# -- checkpoint_resume -----------------------------------------------------------------------------
async def test_a_crashed_run_resumes_without_repeating_reason_or_reflect(tmp_path: Path) -> None:
    resume = example("checkpoint_resume")
    db = tmp_path / "r3.sqlite"
    crashed = await resume.phase(make_backend("scripted"), db, "t1", crash=True)
    assert crashed["crashed"] and crashed["next"] == ["refine"]
    assert crashed["calls"] == {"reason": 1, "reflect": 1, "check": 3, "refine": 1}
    resumed = await resume.phase(make_backend("scripted"), db, "t1", crash=False)
    assert resumed["calls"] == {"refine": 1} and resumed["output"] == TRUTH


def test_a_killed_process_resumes_from_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r3.sqlite"
    script = str(EXAMPLES / "checkpoint_resume.py")
    killed = subprocess.run([sys.executable, script, "--phase", "crash", "--hard-kill", "--db", str(db)],
                            capture_output=True, text=True, timeout=120, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": CHILD_PYTHONPATH})
    assert killed.returncode == example("checkpoint_resume").HARD_KILL_STATUS, killed.stderr
    assert "killing the process as refine calls the model" in killed.stdout
    assert example("checkpoint_resume").main(["--phase", "resume", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "phase 2 (resumed): model calls by node: refine=1\n" in out and TRUTH in out


# -- human_review ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("flags", "reviewed", "output"), [
    (["--auto-approve"], "approved", TRUTH),
    (["--edit", "the red shape is a star, not a circle"], "edited", TRUTH),
    (["--stop"], "stopped", "red circle"),
])
def test_human_review_main(flags: list[str], reviewed: str, output: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert example("human_review").main(flags) == 0
    out = capsys.readouterr().out
    assert "--- review before refine (round 0) ---" in out and "(inconsistent)" in out
    assert f"reviews: {reviewed})" in out and output in out.rsplit("result (", 1)[1]


async def test_an_edited_critique_is_what_refine_sees() -> None:
    backend = make_backend("scripted")
    edit = "the red shape is a star, not a circle"
    result, pauses = await example("human_review").review_run(backend, lambda payload: edit)
    assert len(pauses) == 1 and pauses[0]["kind"] == "r3_review"
    assert result["rounds"][0].reflection.critique == edit
    refine_prompts = [c["prompt"] for c in backend.model.calls if c["stage"] == "refine"]  # type: ignore[attr-defined]
    assert len(refine_prompts) == 1 and edit in refine_prompts[0]


def test_human_review_on_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter(["what?", "e", "", "e", "fix the red shape"])  # unknown key; empty edit; an edit
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert example("human_review").main([]) == 0
    assert "decision: 'fix the red shape'" in capsys.readouterr().out
