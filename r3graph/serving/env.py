"""Environment defaults for running vLLM from this project.

Why: vLLM, torch-inductor and Hugging Face write multi-GB caches into the home directory by
default and try the network for models. A checkout keeps them in its ignored ``.cache/`` folder
and stays offline. Only unset variables are filled in, so the Makefile and users still win.
"""

from __future__ import annotations

import os
from pathlib import Path

# r3graph/serving/env.py -> repository root (only meaningful in a source checkout).
_REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "scenes-vlm"


def project_cache_dir() -> Path | None:
    """The checkout's ``.cache`` folder, or None for an installed (non-editable) package."""
    if (_REPO_ROOT / "pyproject.toml").is_file():
        return _REPO_ROOT / ".cache"
    return None


def vllm_env_defaults() -> dict[str, str]:
    """Variables R3 wants for vLLM; callers merge them under the user's own environment."""
    env = {
        "HF_HUB_OFFLINE": "1",  # never download: models are shipped or built locally
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; ignored by GPU builds. Our prompts are short.
    }
    cache = project_cache_dir()
    if cache is not None:
        env |= {
            "VLLM_CACHE_ROOT": str(cache / "vllm"),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
            "HF_HOME": str(cache / "hf"),
        }
    return env


def apply_vllm_env_defaults() -> None:
    """Fill in unset variables in this process (before vLLM is imported or started)."""
    for key, value in vllm_env_defaults().items():
        os.environ.setdefault(key, value)


def child_env() -> dict[str, str]:
    """Environment for a vLLM child process: ours as defaults, the caller's on top."""
    return vllm_env_defaults() | dict(os.environ)
