"""Does the loop help? One-shot vs R3 (self_questions, judge, multi_step; depth 1-3; select last/best)
vs the ablation "refine without reflect", on held-out scenes, with paired bootstrap intervals.

    .venv/bin/python bench/quality.py --quick            # a few minutes on a 2-core CPU
    .venv/bin/python bench/quality.py                    # 300 scenes, every condition
    .venv/bin/python bench/quality.py --base-url http://127.0.0.1:8000/v1 --model NAME --pack default
    .venv/bin/python bench/quality.py --output image     # output mode "image": runs bench/image_quality.py

Writes bench/results/quality.md, quality.png, quality.jsonl.gz (every run's trajectory) and quality.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shlex
import sys
import time
from pathlib import Path

from r3graph.backends import Backend, add_backend_arguments, started_backend
from r3graph_scenes.evaluation.quality import (
    HELD_OUT_SEED,
    default_conditions,
    held_out_cases,
    log,
    reflect_accuracy,
    run_condition,
    vqa_accuracy,
)
from r3graph_scenes.evaluation.report import markdown, plot, summarise, write_jsonl

RESULTS = Path(__file__).parent / "results"


async def main_async(args: argparse.Namespace) -> tuple:  # type: ignore[type-arg]
    started = time.perf_counter()
    async with started_backend(args, log) as backend:
        return await _measure(args, backend, started)


async def _measure(args: argparse.Namespace, backend: Backend, started: float) -> tuple:  # type: ignore[type-arg]
    cases = held_out_cases(args.scenes, seed=args.seed, image_size=args.image_size)
    conditions = default_conditions(args.quick)
    records, wall = {}, {}
    for condition in conditions:
        t0 = time.perf_counter()
        log(f"{condition.name} ({len(cases)} scenes)")
        records[condition.name] = await run_condition(backend.model, backend.pack, cases, condition,
                                                      concurrency=args.concurrency, progress=log)
        wall[condition.name] = time.perf_counter() - t0
    log("VQA on the same scenes")
    vqa = await vqa_accuracy(backend.model, backend.pack, cases, concurrency=args.concurrency)
    reflect = {c.name: reflect_accuracy(records[c.name], cases) for c in conditions
               if c.depth > 0 and c.reflect != "none" and c.select == "last"}
    rows = summarise(records, wall)
    meta = {
        "command": "python bench/quality.py " + shlex.join(sys.argv[1:]),
        "model": backend.model_name, "pack": backend.pack, "backend": backend.kind,
        "scenes": len(cases), "seed": args.seed,
        "machine": f"{platform.machine()}, {platform.python_version()}, {__import__('os').cpu_count()} CPUs",
        "total_minutes": (time.perf_counter() - started) / 60,
    }
    return rows, meta, vqa, reflect, records, conditions


def write_results(out: Path, results: tuple) -> None:  # type: ignore[type-arg]
    rows, meta, vqa, reflect, records, conditions = results
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.md").write_text(markdown(rows, meta, vqa, reflect))
    (out / "quality.json").write_text(json.dumps({"meta": meta, "rows": rows, "vqa": vqa, "reflect": reflect},
                                                 indent=2, default=str) + "\n")
    write_jsonl(records, out / "quality.jsonl.gz")
    plot(rows, conditions, out / "quality.png")
    print((out / "quality.md").read_text())


def main() -> None:
    if sys.argv[1:3] == ["--output", "image"]:  # text -> image has its own generator and scorer
        sys.path.insert(0, str(Path(__file__).parent))
        import image_quality

        sys.argv[1:3] = []
        image_quality.main()
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6 conditions on 60 scenes")
    parser.add_argument("--scenes", type=int, default=None, help="held-out scenes (default 300, quick 60)")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--image-size", type=int, default=64, help="64 for scenes-vlm; e.g. 384 for real VLMs")
    parser.add_argument("--concurrency", type=int, default=16)
    add_backend_arguments(parser)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.scenes is None:
        args.scenes = 60 if args.quick else 300
    write_results(Path(args.out), asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
