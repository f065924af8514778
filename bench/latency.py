"""R3 latency on real vLLM (in-process engine): what the loop costs and what serving tricks buy.

    .venv/bin/python bench/latency.py [--model DIR] [--repeats 5] [--no-cache-off] [--no-spec]

Measures, each on fresh scene images so no run is served from an earlier run's cache:
one-shot vs R3 (1 round, self_questions, k=3) median wall time; checks answered concurrently
vs one by one; the share of reflect/refine prompt tokens served from the prefix cache; 16
concurrent R3 runs vs one; prefix caching off (a second engine, started after the first
stops); prompt-lookup (ngram) speculative decoding for the refine stage (a third engine).
Targets: R3/one-shot <= 1.8, >= 70 % of reflect/refine prompt tokens from cache, 16 runs in
<= 4x one run. Prints a table and writes bench/results/latency.md and latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
NGRAM = {"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 4, "prompt_lookup_min": 2}


@dataclass
class Call:
    node: str
    seconds: float
    input_tokens: int
    cached_tokens: int
    output_tokens: int


@dataclass(eq=False)  # callback managers keep handlers in sets: identity hash
class Recorder(AsyncCallbackHandler):
    """Per model call: the graph node that made it (LangGraph puts it in metadata), time, usage."""

    calls: list[Call] = field(default_factory=list)
    _open: dict[UUID, tuple[str, float]] = field(default_factory=dict)

    async def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                                  metadata: dict[str, Any] | None = None, **kw: Any) -> None:
        self._open[run_id] = (str((metadata or {}).get("langgraph_node", "?")), time.perf_counter())

    async def on_llm_end(self, response: Any, *, run_id: UUID, **kw: Any) -> None:
        node, t0 = self._open.pop(run_id, ("?", time.perf_counter()))
        usage = getattr(response.generations[0][0].message, "usage_metadata", None) or {}
        self.calls.append(Call(node, time.perf_counter() - t0, usage.get("input_tokens", 0),
                               (usage.get("input_token_details") or {}).get("cache_read", 0),
                               usage.get("output_tokens", 0)))


class Images:
    """Fresh 64x64 scene images as data URLs (a new image never hits an earlier run's cache)."""

    def __init__(self) -> None:
        from r3graph.scenes.world import generate_scenes, render

        self._scenes = iter(generate_scenes(seed=1234, n=100_000))
        self._render = render

    def next(self) -> str:
        buf = io.BytesIO()
        self._render(next(self._scenes)).save(buf, "PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


class Bench:
    def __init__(self, model: Any, pack: str, images: Images) -> None:
        from r3graph import build_r3_graph

        self.graph = build_r3_graph(model, pack=pack).compile()
        self.images = images

    async def run(self, rec: Recorder | None = None, **ctx: Any) -> float:
        from r3graph import R3Context

        t0 = time.perf_counter()
        await self.graph.ainvoke({"instruction": "Describe the image.", "images": [self.images.next()]},
                                 context=R3Context(**ctx), config={"callbacks": [rec] if rec else []})
        return time.perf_counter() - t0

    async def median(self, repeats: int, rec: Recorder | None = None, **ctx: Any) -> float:
        return statistics.median([await self.run(rec, **ctx) for _ in range(repeats)])

    async def concurrent(self, n: int, **ctx: Any) -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*[self.run(**ctx) for _ in range(n)])
        return time.perf_counter() - t0


R3 = {"max_rounds": 1, "reflect": "self_questions", "num_questions": 3}
ONE_SHOT = {"max_rounds": 0, "reflect": "none"}


def cache_share(rec: Recorder) -> tuple[float, int, int]:
    later = [c for c in rec.calls if c.node != "reason"]
    inp = sum(c.input_tokens for c in later)
    cached = sum(c.cached_tokens for c in later)
    return (cached / inp if inp else 0.0), cached, inp


def stage_median(rec: Recorder, node: str) -> float:
    xs = [c.seconds for c in rec.calls if c.node == node]
    return statistics.median(xs) if xs else float("nan")


ENGINE_KW: dict[str, Any] = {}


async def with_engine(model_dir: str, **kw: Any) -> Any:
    from r3graph.serving import ChatVLLMEngine

    return await ChatVLLMEngine(model=model_dir, **{**ENGINE_KW, **kw}).astart()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    images, r, n = Images(), {}, args.repeats
    eng = await with_engine(args.model)
    b = Bench(eng, args.pack, images)
    await b.run(**R3)  # warm-up: grammar compile, first-request paths
    r["one_shot_s"] = await b.median(n, **ONE_SHOT)
    rec = Recorder()
    r["r3_s"] = await b.median(n, rec, **R3)
    r["r3_over_one_shot"] = r["r3_s"] / r["one_shot_s"]
    r["cache_share"], r["cached_tokens"], r["reflect_refine_prompt_tokens"] = cache_share(rec)
    r["calls_per_r3_run"] = len(rec.calls) / n
    r["refine_call_s"] = stage_median(rec, "refine")
    for node in sorted({c.node for c in rec.calls}):  # where an R3 run's time goes
        r[f"stage_{node}_call_s"] = stage_median(rec, node)
        r[f"stage_{node}_calls_per_run"] = sum(c.node == node for c in rec.calls) / n
    r["r3_sequential_checks_s"] = await b.median(n, concurrent_checks=False, **R3)
    r["concurrent_over_sequential"] = r["r3_s"] / r["r3_sequential_checks_s"]
    r["r3_16_concurrent_s"] = await b.concurrent(16, **R3)
    r["sixteen_over_one"] = r["r3_16_concurrent_s"] / r["r3_s"]
    await eng.ashutdown()  # one engine at a time on this machine

    if args.cache_off:
        eng = await with_engine(args.model, enable_prefix_caching=False)
        b = Bench(eng, args.pack, images)
        await b.run(**R3)
        r["r3_cache_off_s"] = await b.median(n, **R3)
        r["cache_on_over_off"] = r["r3_s"] / r["r3_cache_off_s"]
        await eng.ashutdown()
    if args.spec:
        eng = await with_engine(args.model, speculative_config=NGRAM)
        b = Bench(eng, args.pack, images)
        await b.run(**R3)
        rec = Recorder()
        r["r3_ngram_spec_s"] = await b.median(n, rec, **R3)
        r["refine_call_ngram_s"] = stage_median(rec, "refine")
        r["refine_ngram_over_plain"] = r["refine_call_ngram_s"] / r["refine_call_s"]
        await eng.ashutdown()
    return r


ROWS = [
    ("one-shot run, median (s)", "one_shot_s", "{:.3f}", ""),
    ("R3 1 round (self_questions k=3), median (s)", "r3_s", "{:.3f}", ""),
    ("R3 / one-shot", "r3_over_one_shot", "{:.2f}x", "<= 1.8x"),
    ("model calls per R3 run", "calls_per_r3_run", "{:.1f}", ""),
    ("reflect/refine prompt tokens from cache", "cache_share", "{:.0%}", ">= 70%"),
    ("R3, checks one by one, median (s)", "r3_sequential_checks_s", "{:.3f}", ""),
    ("concurrent / sequential checks", "concurrent_over_sequential", "{:.2f}x", "< 1"),
    ("16 concurrent R3 runs, wall (s)", "r3_16_concurrent_s", "{:.3f}", ""),
    ("16 runs / 1 run", "sixteen_over_one", "{:.2f}x", "<= 4x"),
    ("R3 with prefix caching off, median (s)", "r3_cache_off_s", "{:.3f}", ""),
    ("cache on / off", "cache_on_over_off", "{:.2f}x", "< 1"),
    ("refine call, median (s)", "refine_call_s", "{:.3f}", ""),
    ("R3 with ngram speculative decoding, median (s)", "r3_ngram_spec_s", "{:.3f}", ""),
    ("refine call with ngram spec, median (s)", "refine_call_ngram_s", "{:.3f}", ""),
    ("refine ngram / plain", "refine_ngram_over_plain", "{:.2f}x", "< 1"),
]


def table(r: dict[str, Any]) -> str:
    lines = ["| measure | value | target |", "| --- | --- | --- |"]
    lines += [f"| {label} | {fmt.format(r[key])} | {target} |" for label, key, fmt, target in ROWS if key in r]
    lines += [f"| {k.removeprefix('stage_').replace('_', ' ')} | {v:.3f} |  |"
              for k, v in r.items() if k.startswith("stage_")]
    return "\n".join(lines)


def main() -> None:
    from r3graph.serving.env import SHIPPED_MODEL_DIR, apply_vllm_env_defaults

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shipped = (SHIPPED_MODEL_DIR / "config.json").is_file()
    ap.add_argument("--model", default=str(SHIPPED_MODEL_DIR if shipped else REPO / ".cache/tiny-idefics3"))
    ap.add_argument("--pack", default=None, help="default: scenes for scenes-vlm, else default")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-cache-off", dest="cache_off", action="store_false")
    ap.add_argument("--no-spec", dest="spec", action="store_false")
    ap.add_argument("--compile", action="store_true", help="torch.compile (enforce_eager=False)")
    args = ap.parse_args()
    if args.compile:
        ENGINE_KW["enforce_eager"] = False
    args.pack = args.pack or ("scenes" if "scenes" in Path(args.model).name else "default")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    apply_vllm_env_defaults()
    r = asyncio.run(main_async(args))
    head = (f"model `{Path(args.model).name}`, pack `{args.pack}`, {args.repeats} repeats, "
            f"{platform.machine()} {os.cpu_count()} CPUs, vLLM in-process engine (block 32, "
            f"{'torch.compile' if args.compile else 'eager'}), "
            f"{time.strftime('%Y-%m-%d %H:%M')}")
    out = f"# R3 latency\n\n{head}\n\n{table(r)}\n"
    print(out)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latency.md").write_text(out)
    (RESULTS / "latency.json").write_text(json.dumps({"setup": head, **r}, indent=2) + "\n")


if __name__ == "__main__":
    main()
