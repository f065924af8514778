"""Fixtures for the serving tests: one model dir, one engine, one server per session.

The machine runs one vLLM instance at a time (CPU and memory), so engine tests run before
server tests (see ``pytest_collection_modifyitems``) and the server fixture stops the engine
first. With ``r3graph/models/scenes-vlm`` absent, a tiny random-weight Idefics3 is built.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PIL import Image

from r3graph.serving.env import SHIPPED_MODEL_DIR, apply_vllm_env_defaults, project_cache_dir

apply_vllm_env_defaults()
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_IMAGE = REPO / "r3graph" / "scenes" / "assets" / "example.png"
# Tests that change what is running go last in their group.
_LAST = {"test_shutdown_leaves_no_child_process", "test_stop_leaves_nothing_running"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def key(item: pytest.Item) -> tuple[int, int]:
        group = 1 if item.get_closest_marker("engine") else 2 if item.get_closest_marker("server") else 0
        return group, int(getattr(item, "originalname", item.name) in _LAST)

    items.sort(key=key)


def png_data_url(colour: tuple[int, int, int], size: int = 64) -> str:
    buf = io.BytesIO()
    img = Image.new("RGB", (size, size), (255, 255, 255))
    img.paste(Image.new("RGB", (size // 2, size // 2), colour), (size // 4, size // 4))
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def vllm_children() -> list[psutil.Process]:
    """Live descendants of this process that belong to vLLM (zombies hold nothing)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.cmdline())
        except psutil.NoSuchProcess:
            continue
        # multiprocessing's resource_tracker lives until we exit; it is not vLLM's.
        if "resource_tracker" not in cmd:
            out.append(p)
    return out


@pytest.fixture(scope="session")
def model_dir() -> str:
    if (SHIPPED_MODEL_DIR / "config.json").is_file():
        return str(SHIPPED_MODEL_DIR)
    cache = project_cache_dir() or Path.home() / ".cache" / "r3graph"
    tiny = cache / "tiny-idefics3"
    if not (tiny / "config.json").is_file():
        subprocess.run([sys.executable, str(REPO / "scripts" / "build_tiny_idefics3.py"), str(tiny)],
                       check=True)
    return str(tiny)


@pytest.fixture(scope="session")
def engine(model_dir: str) -> Iterator[object]:
    from r3graph.serving import ChatVLLMEngine, shutdown_engines

    model = ChatVLLMEngine(model=model_dir, max_tokens=24).start()
    yield model
    shutdown_engines()


@pytest.fixture(scope="session")
def server(model_dir: str) -> Iterator[object]:
    from r3graph.serving import VLLMServer, shutdown_engines

    shutdown_engines()  # one vLLM instance at a time on this machine
    srv = VLLMServer(model_dir, startup_timeout=400).start()
    yield srv
    srv.stop()
