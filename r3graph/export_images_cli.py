"""``r3graph export --output image``: run image-mode R3 over a file of prompts, one record per run.

    r3graph export --output image --prompts prompts.txt --image-server learned --out runs.jsonl
                   [--image-model DIR] [--max-rounds 3] [--reflect judge] [--seed 0] [--concurrency 8]

The judge is the chat backend (``--model``/``--base-url`` as for text mode; default the shipped
scenes-vlm in process). The generator is ``--image-server``: ``learned`` starts the learned
token-image model (``--image-model``, default the shipped one) behind the image API in a child
process, as ``r3graph run --output image`` does; ``stand-in`` is the rule-based painter (a test
oracle, not a model); an http(s) URL is a running vllm-omni-style server. Prompt ``i`` gets image
seed ``--seed + i`` on every request of its run (sampled generation, reproducible per prompt).
Images are written to ``<out>.images/`` (see :mod:`r3graph.export_images`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from r3graph import backends
from r3graph.errors import R3ConfigError, R3InputError
from r3graph.export_images import read_image_jsonl, read_prompts, run_image_prompts


def add_image_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of image mode on the ``export`` parser."""
    p.add_argument("--output", choices=["text", "image"], default="text",
                   help="text: R3 over --images; image: R3 generates from each line of --prompts")
    p.add_argument("--prompts", type=Path, help="(--output image) one generation prompt per line")
    p.add_argument("--image-server", help="(--output image) 'learned', 'stand-in' or an http(s) URL")
    p.add_argument("--image-model", type=Path, help="(--image-server learned) model directory (default: the shipped "
                   "scenes-imagegen)")
    p.add_argument("--stand-in-error-rate", type=float, default=0.3, help="(--image-server stand-in) mistake rate")
    p.add_argument("--seed", type=int, default=0, help="(--output image) prompt i gets image seed SEED + i")
    p.add_argument("--size", default="64x64", help="(--output image) image size (scenes-vlm sees 64x64)")
    p.add_argument("--concurrency", type=int, default=8, help="(--output image) runs at once (vLLM batches them)")
    p.add_argument("--max-minutes", type=float, help="(--output image) start no run after this long (those under "
                   "way finish): the prompts done are the first ones in file order")


def check_image_args(args: argparse.Namespace) -> None:
    """Bad input fails here, before an engine starts: a typed error that names the flag."""
    if args.images:
        raise R3InputError("--output image generates from --prompts: drop --images")
    if args.prompts is None:
        raise R3InputError("--output image needs --prompts FILE (one generation prompt per line)")
    if not args.prompts.expanduser().is_file():
        raise R3InputError(f"--prompts {args.prompts}: no such file")
    if not args.image_server:
        raise R3ConfigError("--output image needs an image generator: --image-server learned, stand-in or an "
                            "http(s) URL")
    if args.image_server not in image_server_choices() and not args.image_server.startswith(("http://", "https://")):
        choices = ", ".join(f"'{name}'" for name in image_server_choices())
        raise R3ConfigError(f"--image-server {args.image_server!r}: pass {choices} or an http(s) URL")
    if args.image_server == "learned" and not (_image_model_dir(args) / "config.json").is_file():
        raise R3ConfigError(f"--image-model {_image_model_dir(args)}: no model there (config.json missing)")
    if args.concurrency < 1:
        raise R3ConfigError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.pairs:
        raise R3InputError("--pairs is text mode only (an image run's pairs are its files: see the record)")


def image_server_choices() -> list[str]:
    """``learned`` (a token-image model served here) and the image servers plugins name (r3graph-scenes:
    ``stand-in``, its rule-based painter)."""
    from r3graph.plugins import image_server_names

    return ["learned", *image_server_names()]


def _image_model_dir(args: argparse.Namespace) -> Path:
    from r3graph.plugins import require_image_model_dir

    return Path(args.image_model) if args.image_model else require_image_model_dir()


def _start_image_server(args: argparse.Namespace) -> tuple[Any, str, str]:
    """(server to stop or None, base URL, generator name)."""
    if args.image_server not in ("learned",) and not args.image_server.startswith(("http://", "https://")):
        from r3graph.plugins import image_server

        start = image_server(args.image_server)
        if start is None:
            raise R3ConfigError(f"--image-server {args.image_server!r}: no plugin provides it")
        server, label = start(args)
        return server, server.url, label
    if args.image_server == "learned":
        from r3graph.serving.image_server import ImageServerProcess

        model_dir = _image_model_dir(args)
        print(f"r3graph export: starting the image server over {model_dir}", file=sys.stderr)
        proc = ImageServerProcess(model_dir).start()
        return proc, proc.url, model_dir.name
    return None, args.image_server, args.image_server


async def _collect(args: argparse.Namespace, backend: backends.Backend, url: str, image_model: str) -> int:
    from r3graph import R3Context, build_r3_graph
    from r3graph.image_generation import ImageParams
    from r3graph.serving.image_client import OmniImageClient

    items = read_prompts(args.prompts, args.seed)
    if hasattr(backend.model, "astart"):
        await backend.model.astart()  # engine start-up before the first prompt, not inside its timeout
    if not args.append:
        args.out.write_text("")
    t0 = time.perf_counter()
    async with OmniImageClient(url) as client:  # the server's own model: one model per image server
        graph = build_r3_graph(backend.model, pack=backend.pack, image_backend=client).compile()

        def context_for(seed: int) -> R3Context:
            return R3Context(output="image", max_rounds=args.max_rounds, reflect=args.reflect, select=args.select,
                             image=ImageParams(seed=seed, size=args.size))

        records = await run_image_prompts(
            graph, items, args.out, context_for=context_for, model=backend.model_name, pack=backend.pack,
            image_model=image_model, concurrency=args.concurrency,
            max_seconds=None if args.max_minutes is None else args.max_minutes * 60,
            progress=lambda line: print(line, file=sys.stderr, flush=True))
    passed = sum(r.passed for r in records)
    print(f"r3graph export: {len(records)} run(s) in {time.perf_counter() - t0:.0f}s, {passed} passed by the judge",
          file=sys.stderr)
    return sum(r.error is not None for r in records)


def run_image_export(args: argparse.Namespace) -> int:
    """Exit status 0 when every prompt gave a run without error, 1 otherwise, 2 for bad input."""
    try:
        check_image_args(args)
    except (R3InputError, R3ConfigError) as exc:
        print(f"r3graph export: {exc}", file=sys.stderr)
        return 2
    kind: backends.BackendKind = args.backend or ("server" if args.base_url else "engine")
    backend = backends.make_backend(kind, base_url=args.base_url, model_dir=args.model, pack=args.pack)
    server, url, image_model = _start_image_server(args)
    print(f"r3graph export: judge {backend.label}, pack {backend.pack}; generator {image_model}", file=sys.stderr)
    try:
        failed = asyncio.run(_collect(args, backend, url, image_model))
    finally:
        if server is not None:
            server.stop()
        if backend.kind == "engine":
            from r3graph.serving import shutdown_engines

            shutdown_engines()
    n = sum(1 for _ in read_image_jsonl(args.out))
    print(f"r3graph export: {n} record(s) in {args.out}, images in {args.out.with_name(args.out.stem + '.images')}",
          file=sys.stderr)
    return 1 if failed else 0
