"""The checkpoint-resume and human-review examples on PostgreSQL, as they run on SQLite and in memory:
state written by one process (or one connection) is read back by another through the real server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from r3graph.backends import make_backend
from r3graph_scenes.assets import load_example
from r3graph_scenes.language import caption
from tests.examples.loader import EXAMPLES
from tests.examples.loader import load_example as example
from tests.helpers import CHILD_PYTHONPATH

TRUTH = caption(load_example())
REPO = EXAMPLES.parent


def _thread() -> str:
    return f"pg-{uuid.uuid4().hex[:8]}"  # one server for the session: every test its own thread


async def test_a_crashed_run_resumes_from_postgres_without_repeating_stages(postgres_url: str) -> None:
    resume, thread = example("checkpoint_resume"), _thread()
    crashed = await resume.phase(make_backend("scripted"), postgres_url, thread, crash=True)
    assert crashed["crashed"] and crashed["next"] == ["refine"]
    assert crashed["calls"] == {"reason": 1, "reflect": 1, "check": 3, "refine": 1}
    resumed = await resume.phase(make_backend("scripted"), postgres_url, thread, crash=False)
    assert resumed["calls"] == {"refine": 1} and resumed["output"] == TRUTH
    with psycopg.connect(postgres_url) as conn:  # the checkpoints really are in Postgres
        rows = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread,)).fetchone()
    assert rows is not None and rows[0] >= 4


def test_a_killed_process_resumes_from_postgres(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    thread = _thread()
    killed = subprocess.run([sys.executable, str(EXAMPLES / "checkpoint_resume.py"), "--phase", "crash",
                             "--hard-kill", "--db", postgres_url, "--thread", thread],
                            capture_output=True, text=True, timeout=120, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": CHILD_PYTHONPATH})
    assert killed.returncode == example("checkpoint_resume").HARD_KILL_STATUS, killed.stderr
    assert example("checkpoint_resume").main(["--phase", "resume", "--db", postgres_url, "--thread", thread]) == 0
    out = capsys.readouterr().out
    assert "phase 2 (resumed): model calls by node: refine=1\n" in out and TRUTH in out


async def test_an_edited_review_survives_a_new_connection_on_postgres(postgres_url: str) -> None:
    backend = make_backend("scripted")
    edit = "the red shape is a star, not a circle"
    result, pauses = await example("human_review").review_run(backend, lambda payload: edit,
                                                              thread=_thread(), db=postgres_url)
    assert len(pauses) == 1 and pauses[0]["kind"] == "r3_review"
    assert result["rounds"][0].reflection.critique == edit and result["rounds"][0].reflection.reviewed == "edited"
    refine_prompts = [c["prompt"] for c in backend.model.calls if c["stage"] == "refine"]  # type: ignore[attr-defined]
    assert len(refine_prompts) == 1 and edit in refine_prompts[0]


def test_human_review_main_on_postgres(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert example("human_review").main(["--stop", "--db", postgres_url]) == 0
    out = capsys.readouterr().out
    assert "reviews: stopped)" in out and "red circle" in out.rsplit("result (", 1)[1]
