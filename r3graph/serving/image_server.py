"""Serve a learned token-image model (:mod:`r3graph.serving.token_images`) with vllm-omni's image API.

In process::

    with TokenImageServer("path/to/model") as srv:      # starts vLLM, then listens on 127.0.0.1
        OmniImageClient(srv.url)                          # .../v1, images or chat API

As a child process (tests, benchmarks; ``r3graph image-server --model DIR`` is the same server)::

    with ImageServerProcess("path/to/model") as proc:
        OmniImageClient(proc.base_url)

Loopback only: the server has no authentication, so it never binds another address.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import IO, Any, Self

from r3graph.errors import R3ConfigError
from r3graph.serving.env import apply_vllm_env_defaults, child_env
from r3graph.serving.image_api import ImageApiServer, SizeRule
from r3graph.serving.process import LoopbackProcess
from r3graph.serving.token_images import TokenImageMaker, UnknownWords

DEFAULT_PORT = 8001


class TokenImageServer(ImageApiServer):
    """vllm-omni's image API over a token-image model, vLLM in this process. ``with`` starts and stops
    both; ``counts`` adds the maker's "code_tokens", "prompt_tokens", "cached_tokens", "unknown_words"."""

    thread_name = "token-image-server"

    def __init__(self, model_dir: str | Path, *, served_model_name: str | None = None, temperature: float = 1.0,
                 default_size: int = 256, unknown_words: UnknownWords = "warn", host: str = "127.0.0.1",
                 port: int = 0, log_requests: bool = False, **maker_options: Any) -> None:
        if host != "127.0.0.1":
            raise R3ConfigError(f"the image server binds 127.0.0.1 only (it has no authentication); got {host!r}")
        apply_vllm_env_defaults(model_dir)  # offline and project caches for a local model, before vLLM loads
        self.token_maker = TokenImageMaker(
            model_dir, served_model_name=served_model_name, temperature=temperature,
            sizes=SizeRule(default=default_size, square_only=False), unknown_words=unknown_words,
            count=self.count, **maker_options)
        super().__init__(self.token_maker, host=host, port=port, log_requests=log_requests)

    def start(self) -> Self:
        self.token_maker.start()  # the engine first: once the port answers, requests can be served
        try:
            return super().start()
        except BaseException:
            self.token_maker.stop()
            raise

    def stop(self) -> None:
        super().stop()
        self.token_maker.stop()


class ImageServerProcess(LoopbackProcess):
    """``r3graph image-server`` as a child process on a free loopback port; ready when ``/health`` answers
    (after the engine started). ``stop()`` ends its whole process group (vLLM's engine core too)."""

    label = "image server"

    def __init__(self, model_dir: str | Path, *, served_model_name: str | None = None,
                 temperature: float | None = None, port: int | None = None, startup_timeout: float = 400.0,
                 echo: IO[str] | None = None, log_path: str | Path | None = None) -> None:
        super().__init__(host="127.0.0.1", port=port, startup_timeout=startup_timeout, echo=echo, log_path=log_path)
        self.model_dir = str(model_dir)
        self.served_model_name, self.temperature = served_model_name, temperature

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "r3graph.cli", "image-server", "--model", self.model_dir,
               "--port", str(self.port)]
        if self.served_model_name:
            cmd += ["--served-model-name", self.served_model_name]
        if self.temperature is not None:
            cmd += ["--temperature", str(self.temperature)]
        return cmd

    def child_env(self) -> dict[str, str]:
        return child_env(self.model_dir)


def add_image_server_parser(sub: Any) -> None:
    p = sub.add_parser("image-server", help="serve a learned token-image model with vLLM behind vllm-omni's image "
                       "API, on 127.0.0.1 (see docs/image-mode.md)")
    p.add_argument("--model", required=True, help="model directory with r3graph.json (kind image-tokens)")
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"], help="loopback only (no authentication)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--served-model-name", default=None, help="default: the model directory's name")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0: greedy); a request's "
                   "'temperature' field overrides it")
    p.add_argument("--default-size", type=int, default=256, help="side in pixels when a request names no size")
    p.add_argument("--unknown-words", choices=["warn", "error"], default="warn",
                   help="warn: read them as the unknown token and say so in revised_prompt; error: answer 400")
    p.add_argument("--image-threads", type=int, default=1,
                   help="torch threads for the image tokenizer in this process (default 1: vLLM's worker holds the "
                   "cores; more threads here contend with it, and on a busy 2-core machine made a 6 ms decode 0.7 s)")
    p.add_argument("--log", action="store_true", help="log each request to stderr")


def run_image_server(args: argparse.Namespace) -> int:
    """The CLI command: start, serve until SIGINT/SIGTERM, stop the HTTP side and then the engine."""
    stop = threading.Event()
    if args.image_threads < 1:
        raise R3ConfigError(f"--image-threads must be at least 1, got {args.image_threads}")
    try:
        import torch
    except ImportError:  # an image tokenizer without torch: nothing to limit
        pass
    else:
        torch.set_num_threads(args.image_threads)

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    server = TokenImageServer(args.model, served_model_name=args.served_model_name, temperature=args.temperature,
                              default_size=args.default_size, unknown_words=args.unknown_words, port=args.port,
                              log_requests=args.log)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"r3graph: starting vLLM for {server.token_maker.model_id}...", file=sys.stderr, flush=True)
        server.start()
        print(f"r3graph: serving {server.token_maker.model_id} at {server.url}  (Ctrl-C stops)", flush=True)
        while not stop.wait(0.5):
            pass
        print("r3graph: stopping the image server...", file=sys.stderr, flush=True)
        return 0
    finally:
        server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
