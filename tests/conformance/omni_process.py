"""Start and stop the vllm-omni conformance server (omni_server.py) in ``.venv-omni`` from the test suite."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.helpers import REPO

SERVER = Path(__file__).with_name("omni_server.py")
BAGEL = "ByteDance-Seed/BAGEL-7B-MoT"
QWEN_EDIT = "Qwen/Qwen-Image-Edit"


def pinned_version() -> str:
    """The vllm-omni version the Makefile installs into .venv-omni (``OMNI_VERSION := ...``)."""
    match = re.search(r"^OMNI_VERSION\s*:?=\s*(\S+)", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile must pin OMNI_VERSION"
    return match.group(1)


def omni_python() -> Path:
    """``.venv-omni``'s python. ``make test`` sets R3GRAPH_REQUIRE_OMNI=1, so there a missing environment
    fails the run; a bare pytest without it skips these tests and says how to get them."""
    python = Path(os.environ.get("R3GRAPH_OMNI_PYTHON", REPO / ".venv-omni" / "bin" / "python"))
    if not python.exists():
        if os.environ.get("R3GRAPH_REQUIRE_OMNI"):
            pytest.fail(f"{python} is missing: `make omni-env` creates the vllm-omni environment")
        pytest.skip(f"{python} is missing: run `make omni-env` (or `make test`) for the vllm-omni conformance tests")
    return python


@contextmanager
def omni_server(*args: str, timeout: float = 60.0) -> Iterator[str]:
    """vllm-omni's request handling on 127.0.0.1 (random port); yields its base URL (``.../v1``)."""
    python = omni_python()
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen([str(python), str(SERVER), *args], stdout=subprocess.PIPE, stderr=errors, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # the server prints READY once listening (or dies)
            if not line.startswith("READY "):
                proc.wait(timeout=timeout)
                errors.seek(0)
                raise RuntimeError(f"omni_server {' '.join(args)} did not start: {line!r}\n{errors.read()[-3000:]}")
            url = line.split()[1] + "/v1"
            _wait_listening(url, timeout)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode not in (0, -15):
                errors.seek(0)
                print(errors.read()[-3000:])


def _wait_listening(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/models", timeout=2, trust_env=False)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def engine_calls(url: str) -> list[dict]:
    """What reached the fake engine: the prompt and each stage's sampling params, as vllm-omni built them."""
    return list(httpx.get(url.removesuffix("/v1") + "/_fake/calls", trust_env=False).json())


def diffusion_params(call: dict) -> dict:
    """The last stage's params (the diffusion stage in every topology the tests use)."""
    return dict(call["stages"][-1])
