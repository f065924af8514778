"""``langgraph dev`` serves langgraph.json's R3 graph: one run, and a review pause resumed, over HTTP.

The server runs the SCRIPTED backend (``R3GRAPH_BACKEND=scripted``): this test is about the server
wiring (graph loading, context vetting, threads, interrupts). Measured on the 2-core CI-class
machine: ready in ~2.4 s scripted; with the in-process engine (tiny Idefics3) ready in ~32.5 s, as
the graph starts vLLM while loading, then ~2 s per 1-round run. The engine itself is covered by
the engine tests, so the server test does not pay that start-up.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from r3graph_scenes.assets import EXAMPLE_PNG, load_example
from r3graph_scenes.language import caption

REPO = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
IMAGE = "data:image/png;base64," + base64.b64encode(EXAMPLE_PNG.read_bytes()).decode()
# Nothing leaves 127.0.0.1: no version check, no CLI analytics, no LangSmith tracing.
OFFLINE_ENV = {"LANGGRAPH_NO_VERSION_CHECK": "true", "LANGGRAPH_CLI_NO_ANALYTICS": "1",
               "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false", "LANGSMITH_API_KEY": ""}

pytestmark = [pytest.mark.server, pytest.mark.skipif(not LANGGRAPH.exists(), reason="langgraph-cli not installed")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    workdir = tmp_path_factory.mktemp("langgraph-dev")  # the in-memory server persists to ./.langgraph_api
    log = (workdir / "server.log").open("w")
    env = {**os.environ, **OFFLINE_ENV, "R3GRAPH_BACKEND": "scripted"}
    started = time.monotonic()
    process = subprocess.Popen(
        [str(LANGGRAPH), "dev", "--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload",
         "--config", str(REPO / "langgraph.json")],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(trust_env=False) as http:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"langgraph dev exited ({process.returncode}):\n{(workdir / 'server.log').read_text()}")
                try:
                    if http.get(f"{url}/ok", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - started > 90:
                    pytest.fail(f"langgraph dev not ready in 90 s:\n{(workdir / 'server.log').read_text()}")
                time.sleep(0.25)
        print(f"langgraph dev ready in {time.monotonic() - started:.1f} s")
        yield url
    finally:
        # The whole process group: `langgraph dev` runs the API server in the same group.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        log.close()


def run_wait(http: httpx.Client, url: str, thread: str, body: dict[str, object]) -> dict[str, object]:
    response = http.post(f"{url}/threads/{thread}/runs/wait", json={"assistant_id": "r3", **body}, timeout=60)
    response.raise_for_status()
    return dict(response.json())


def test_one_run_through_the_http_api(server: str) -> None:
    with httpx.Client(trust_env=False) as http:
        thread = http.post(f"{server}/threads", json={}).json()["thread_id"]
        values = run_wait(http, server, thread, {
            "input": {"instruction": "Describe the image.", "images": [IMAGE]},
            "context": {"max_rounds": 2},
        })
        assert values["output"] == caption(load_example())
        assert values["stop_reason"] == "passed" and len(values["rounds"]) == 2  # type: ignore[arg-type]
        state = http.get(f"{server}/threads/{thread}/state").json()
        assert state["values"]["output"] == values["output"] and state["next"] == []


def test_review_pauses_and_resumes_over_http(server: str) -> None:
    with httpx.Client(trust_env=False) as http:
        thread = http.post(f"{server}/threads", json={}).json()["thread_id"]
        context = {"max_rounds": 1, "review": True}
        paused = run_wait(http, server, thread, {
            "input": {"instruction": "Describe the image.", "images": [IMAGE]}, "context": context})
        (pending,) = list(paused["__interrupt__"])  # type: ignore[call-overload]
        assert pending["value"]["kind"] == "r3_review" and "(inconsistent)" in pending["value"]["critique"]
        done = run_wait(http, server, thread, {"command": {"resume": "the red circle is a star"}, "context": context})
        assert done["rounds"][0]["reflection"]["reviewed"] == "edited"  # type: ignore[index]
        assert done["output"] == caption(load_example())


def test_clients_cannot_widen_the_image_policy(server: str) -> None:
    """A client asking for file access in its context still cannot make the server read a file."""
    with httpx.Client(trust_env=False) as http:
        thread = http.post(f"{server}/threads", json={}).json()["thread_id"]
        for context in ({"allow_file_paths": True, "image_root": "/"}, {}):
            run = http.post(f"{server}/threads/{thread}/runs/wait", timeout=60, json={
                "assistant_id": "r3", "input": {"instruction": "Describe.", "images": [str(EXAMPLE_PNG)]},
                "context": context})
            error = run.json()["__error__"]
            assert error["error"] == "R3InputError" and "file paths are not accepted" in error["message"]
