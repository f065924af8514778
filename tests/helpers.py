"""Helpers shared by the tests that run the real vLLM engine or server."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import psutil
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_IMAGE = REPO / "scenes" / "r3graph_scenes" / "assets" / "example.png"
# PYTHONPATH for a child process that must import this checkout's code: the core and the scene-world
# plugin (scenes/), whether or not r3graph-scenes is installed.
CHILD_PYTHONPATH = os.pathsep.join([str(REPO), str(REPO / "scenes")])


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
            cmd, name = " ".join(p.cmdline()), p.name()
        except psutil.NoSuchProcess:
            continue
        # multiprocessing's resource_tracker lives until we exit; r3graph's image decoders are pooled for
        # the process's life (r3graph.image_worker); the session's private Postgres server (tests' fixture)
        # runs until the session ends: none of them is vLLM's.
        if "resource_tracker" not in cmd and name not in ("r3-image-worker", "postgres"):
            out.append(p)
    return out


