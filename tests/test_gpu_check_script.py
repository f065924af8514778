"""scripts/gpu_check.sh cannot run here (it needs an NVIDIA GPU); its syntax, and its lint where
shellcheck is installed, are checked so a CPU-only change cannot break it unnoticed."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.helpers import REPO

SCRIPT = REPO / "scripts" / "gpu_check.sh"


def test_gpu_check_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_gpu_check_refuses_a_machine_without_an_nvidia_gpu(tmp_path: object) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi")
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "needs an NVIDIA GPU" in done.stderr


def test_gpu_check_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    subprocess.run([shellcheck, str(SCRIPT)], check=True)
