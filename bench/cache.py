"""What LangGraph's node cache saves on a workload where some requests repeat: model calls and time.

    .venv/bin/python bench/cache.py [--requests 40] [--repeat-share 0.3] [--seed 7]

A workload of R3 requests (1 round, self_questions k=3, greedy) on the in-process vLLM engine with
``scenes-vlm``: a share of the requests (30% by default, seeded positions) repeats an (image,
instruction) pair seen earlier, the rest bring a fresh scene image. Every request runs through the
graph compiled without a cache and through the graph compiled with ``InMemoryCache``, back to back on
the same engine, alternating which goes first (the second one of a pair would otherwise find the
image in vLLM's prefix cache more often). Counts engine calls (a callback on every chat model start)
and wall time; the cost ratio is a ratio of means with a paired bootstrap 95% interval over requests.
Writes bench/results/cache.md and cache.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler

sys.path.insert(0, str(Path(__file__).parent))
from latency import Images  # a sibling bench script

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
R3 = {"max_rounds": 1, "reflect": "self_questions", "num_questions": 3}
INSTRUCTION = "Describe the image."


class CallCounter(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.calls = 0

    async def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1


def workload(n: int, repeat_share: float, seed: int, images: Images) -> tuple[list[str], list[bool]]:
    """n image data URLs; round(n * repeat_share) of them (not the first) repeat an earlier one."""
    rng = random.Random(seed)
    repeats = set(rng.sample(range(1, n), round(n * repeat_share)))
    urls: list[str] = []
    for i in range(n):
        urls.append(rng.choice(urls) if i in repeats else images.next())
    return urls, [i in repeats for i in range(n)]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from langgraph.cache.memory import InMemoryCache

    from r3graph import R3Context, build_r3_graph
    from r3graph.checkpointing import checkpoint_serde
    from r3graph.serving import ChatVLLMEngine

    images = Images()
    warm = images.next()  # the warm-up's image, never one of the workload's
    urls, repeated = workload(args.requests, args.repeat_share, args.seed, images)
    engine = await ChatVLLMEngine(model=args.model).astart()
    graphs = {
        "no cache": build_r3_graph(engine, pack=args.pack).compile(),
        "InMemoryCache": build_r3_graph(engine, pack=args.pack).compile(cache=InMemoryCache(serde=checkpoint_serde())),
    }
    context = R3Context(**R3)
    for graph in graphs.values():  # warm-up on an image outside the workload
        await graph.ainvoke({"instruction": INSTRUCTION, "images": [warm]}, context=context)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in graphs}
    names = list(graphs)
    try:
        for i, url in enumerate(urls):
            for name in names if i % 2 == 0 else names[::-1]:
                counter = CallCounter()
                t0 = time.perf_counter()
                result = await graphs[name].ainvoke({"instruction": INSTRUCTION, "images": [url]},
                                                    {"callbacks": [counter]}, context=context)
                rows[name].append({"s": time.perf_counter() - t0, "calls": counter.calls, "output": result["output"]})
    finally:
        await engine.ashutdown()
    return summarise(rows, repeated, args)


def summarise(rows: dict[str, list[dict[str, Any]]], repeated: list[bool], args: argparse.Namespace) -> dict[str, Any]:
    from r3graph.evaluation.stats import mean, median_interval, ratio_bootstrap

    off, on = rows["no cache"], rows["InMemoryCache"]
    out: dict[str, Any] = {"requests": len(off), "repeated_requests": sum(repeated),
                           "repeat_share": args.repeat_share, "seed": args.seed, "conditions": {}}
    for name, rs in rows.items():
        times = [r["s"] for r in rs]
        repeat_times = [r["s"] for r, rep in zip(rs, repeated, strict=True) if rep]
        m, lo, hi = median_interval(times)
        out["conditions"][name] = {
            "model_calls": sum(r["calls"] for r in rs),
            "model_calls_on_repeats": sum(r["calls"] for r, rep in zip(rs, repeated, strict=True) if rep),
            "total_s": round(sum(times), 3),
            "median_s": [round(m, 3), round(lo, 3), round(hi, 3)],
            "median_repeat_s": round(median_interval(repeat_times)[0], 4) if repeat_times else None,
        }
    ratio = ratio_bootstrap([r["s"] for r in off], [r["s"] for r in on], center=mean)
    out["time_ratio_cached_over_uncached"] = [round(ratio.ratio, 3), round(ratio.low, 3), round(ratio.high, 3)]
    out["call_ratio_cached_over_uncached"] = round(out["conditions"]["InMemoryCache"]["model_calls"]
                                                   / out["conditions"]["no cache"]["model_calls"], 3)
    out["outputs_differing"] = sum(a["output"] != b["output"] for a, b in zip(off, on, strict=True))
    return out


def markdown(r: dict[str, Any], head: str) -> str:
    lines = [
        "# Node cache on a repeating workload (bench/cache.py)", "", head, "",
        f"{r['requests']} requests, {r['repeated_requests']} of them repeat an earlier (image, instruction) pair "
        f"(share {r['repeat_share']}, seed {r['seed']}); R3 1 round, self_questions k=3, greedy.", "",
        "| condition | model calls (all) | model calls on repeats | total s | median s per request [95% CI] "
        "| median s of a repeat |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, c in r["conditions"].items():
        m, lo, hi = c["median_s"]
        lines.append(f"| {name} | {c['model_calls']} | {c['model_calls_on_repeats']} | {c['total_s']:.2f} "
                     f"| {m:.3f} [{lo:.3f}, {hi:.3f}] | {c['median_repeat_s']} |")
    t, lo, hi = r["time_ratio_cached_over_uncached"]
    lines += ["", f"- model calls, cached / uncached: {r['call_ratio_cached_over_uncached']:.2f}",
              f"- time (mean per request), cached / uncached: {t:.2f}x [{lo:.2f}, {hi:.2f}] (paired bootstrap 95%)",
              f"- requests whose output differs between the conditions: {r['outputs_differing']} (greedy: expect 0)"]
    return "\n".join(lines) + "\n"


def main() -> None:
    from r3graph.serving.env import apply_vllm_env_defaults
    from r3graph_scenes.plugin import SCENES_VLM_DIR

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(SCENES_VLM_DIR))
    ap.add_argument("--pack", default="scenes")
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--repeat-share", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--note", default="", help="a line for the results file (e.g. how loaded the machine was)")
    args = ap.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    apply_vllm_env_defaults()
    r = asyncio.run(measure(args))
    head = (f"model `{Path(args.model).name}`, {platform.machine()} {os.cpu_count()} CPUs, vLLM in-process engine, "
            f"{time.strftime('%Y-%m-%d %H:%M')}. {args.note}").strip()
    text = markdown(r, head)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cache.md").write_text(text)
    (RESULTS / "cache.json").write_text(json.dumps({"setup": head, **r}, indent=2) + "\n")


if __name__ == "__main__":
    main()
