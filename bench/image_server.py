"""How fast does the token-image server make images? Time per image through HTTP, as the R3 graph calls it.

    .venv/bin/python bench/image_server.py                       # untrained scenes-imagegen (same shape as trained)
    .venv/bin/python bench/image_server.py --model DIR --images 64 --concurrency 1 4 8

Starts ``r3graph image-server`` as a child process (the deployment path: CLI, vLLM, HTTP on 127.0.0.1)
and drives it with ``OmniImageClient``: ``--images`` generations at each concurrency (seeded, so each
is a fresh 64-token sample), then as many edits of one generated image (whose source codes hit the
prefix cache). Speed does not depend on the weights, so without ``--model`` an untrained model of the
trained one's shape is built (r3graph_scenes.imagegen.model.build_untrained). Writes
bench/results/image_server.md and image_server.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from r3graph.image_generation import ImageParams
from r3graph.serving.env import project_cache_dir
from r3graph.serving.image_client import OmniImageClient, discover_image_model
from r3graph.serving.image_server import ImageServerProcess

RESULTS = Path(__file__).resolve().parent / "results"
PROMPT = "a large red circle to the left of a small blue square"


def _untrained_model() -> Path:
    from r3graph_scenes.imagegen.model import build_untrained

    path = (project_cache_dir() or Path.home() / ".cache" / "r3graph") / "bench-imagegen-untrained"
    if not (path / "r3graph.json").is_file():
        build_untrained(path)
    return path


async def _timed(calls: list[Any], concurrency: int) -> tuple[float, list[float]]:
    """Wall seconds for all calls at ``concurrency`` in flight, and each call's latency."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(make: Any) -> None:
        async with gate:
            t = time.perf_counter()
            await make()
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(one(c) for c in calls))
    return time.perf_counter() - start, latencies


def _row(kind: str, concurrency: int, wall: float, latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {"kind": kind, "concurrency": concurrency, "images": len(latencies), "wall_s": round(wall, 3),
            "ms_per_image": round(1000 * wall / len(latencies), 1),
            "latency_p50_ms": round(1000 * statistics.median(ordered), 1),
            "latency_p90_ms": round(1000 * ordered[int(0.9 * (len(ordered) - 1))], 1)}


async def _bench(url: str, images: int, levels: list[int], size: str) -> list[dict[str, Any]]:
    rows = []
    async with OmniImageClient(url, timeout=600) as client:
        await client.agenerate(PROMPT, ImageParams(size=size, seed=0))  # warm-up: first-request costs
        for c in levels:
            calls = [lambda i=i, c=c: client.agenerate(PROMPT, ImageParams(size=size, seed=1000 * c + i))
                     for i in range(images)]
            rows.append(_row("generate", c, *await _timed(calls, c)))
        source = await client.agenerate(PROMPT, ImageParams(size=size, seed=1))
        for c in levels:
            calls = [lambda i=i: client.aedit(source, "make the red circle blue", ImageParams(seed=i))
                     for i in range(images)]
            rows.append(_row("edit", c, *await _timed(calls, c)))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--model", default=None, help="token-image model directory (default: untrained scenes-imagegen)")
    ap.add_argument("--images", type=int, default=32, help="images per measurement")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--out", default=str(RESULTS / "image_server"), help="path stem for .md and .json")
    args = ap.parse_args(argv)
    model = Path(args.model) if args.model else _untrained_model()
    load_before = os.getloadavg()[0]  # a shared machine: other work slows every figure
    started = time.perf_counter()
    with ImageServerProcess(model) as srv:
        startup = time.perf_counter() - started
        served = asyncio.run(discover_image_model(srv.base_url))
        rows = asyncio.run(_bench(srv.base_url, args.images, args.concurrency, args.size))
    meta = json.loads((model / "r3graph.json").read_text())
    config = json.loads((model / "config.json").read_text())
    result = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]), "model": served,
        "model_shape": {k: config.get(k) for k in ("hidden_size", "num_hidden_layers", "vocab_size")},
        "codebook_size": meta["codebook_size"], "tokens_per_image": meta["tokens_per_image"], "size": args.size,
        "startup_s": round(startup, 1), "cpus": os.cpu_count(), "machine": platform.machine(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# Token-image server: time per image through HTTP", "",
        f"`{result['command']}`: model {served} ({result['model_shape']}, {meta['codebook_size']} codes, "
        f"{meta['tokens_per_image']} tokens an image), {args.size} PNGs, {os.cpu_count()} CPUs, "
        f"server start {result['startup_s']} s (vLLM engine included); 1-minute load average "
        f"{result['load_average_1min'][0]} before, {result['load_average_1min'][1]} after.", "",
        "| kind | in flight | images | wall s | ms / image | p50 ms | p90 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(f"| {r['kind']} | {r['concurrency']} | {r['images']} | {r['wall_s']} | {r['ms_per_image']} | "
          f"{r['latency_p50_ms']} | {r['latency_p90_ms']} |" for r in rows),
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
