"""The decode workers: a caller's script is not re-run inside them, and a stuck decode is cut."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from r3graph import R3InputError
from r3graph.image_worker import run_in_worker
from tests.helpers import REPO


def test_a_script_without_a_main_guard_runs_once(tmp_path: object) -> None:
    """multiprocessing's spawn re-imports the parent's __main__ in each child; the workers must not, or
    a script that calls R3 at top level would run again (and try to start workers) in every worker."""
    script = textwrap.dedent("""
        import asyncio
        print("TOP-LEVEL RAN", flush=True)
        from r3graph.images import normalise_images
        from tests.fakes import png_bytes
        # 300x300: over the small-PNG size that is checked in a thread, so the workers do start
        print(len(asyncio.run(normalise_images([png_bytes(size=(300, 300))] * 3))), "images", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("TOP-LEVEL RAN") == 1 and "3 images" in done.stdout


def _spin(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "finished"


async def test_a_decode_over_its_budget_is_killed_and_the_pool_recovers() -> None:
    started = time.monotonic()
    with pytest.raises(R3InputError, match=r"took longer than 0\.5 s"):
        await run_in_worker(_spin, 60.0, timeout_s=0.5, label="images[0]", budget="image_timeout_s")
    assert time.monotonic() - started < 5  # cut at the budget, not after the 60 s "decode"
    assert await run_in_worker(_spin, 0.0, timeout_s=30, label="images[0]", budget="image_timeout_s") == "finished"
