"""The client's share of throughput at high concurrency: many R3 runs on one event loop against a
model that answers after a fixed delay, as a server does, with no engine to add noise.

    .venv/bin/python bench/concurrency_overhead.py [--concurrency 1 16 64] [--latency-ms 100] [--reps 12]

Why: through vLLM's server, 64 concurrent R3 runs finished at 0.60-0.65x the rate of the same calls
made directly (bench/results/latency_server_run*.md), more than the graph's extra client CPU per run
explains. Every run of a batch shares one event loop, so the client's work for each step of every
run is serial; while the loop works through 64 runs' steps, calls that could already be at the
server wait. This benchmark measures that alone: the model replies after ``--latency-ms`` (no CPU),
so a batch's ideal wall time is its call waves times the latency, and what is above it is the
client's work on the critical path.

Conditions (bench/overhead.py's, the same calls, interleaved batch by batch in a rotating order):
``plain`` (a hand-written asyncio loop), ``langgraph`` (a bare LangGraph graph of R3's shape),
``langgraph_r3_topology`` (plus R3's prepare/finalize steps and policies), ``r3`` (the R3 graph,
tracing sampled out), ``r3_traced`` (tracing on), and ``r3_images_in_worker``: ``r3`` with the input
image checked in a worker process, as every image was before small PNGs moved to a thread (the A/B
of that change). Per condition and concurrency: batch wall time,
runs per second with bootstrap 95% intervals, ratios to plain (paired by repetition), the client's
time on the critical path per batch (wall - ideal), and when the last run of the batch made its
first call (how long the loop took to start them all). Writes bench/results/concurrency_overhead.md
and .json (``--out`` renames them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from overhead import INSTRUCTION, PNG, ROUNDS, InstantModel, K, Switch, bare_langgraph, plain_loop
from pydantic import Field

import r3graph.images as images_module
from r3graph import R3Context, build_r3_graph
from r3graph.evaluation.stats import median_interval, ratio_bootstrap
from r3graph.image_decode import is_small_png

RESULTS = Path(__file__).parent / "results"
CALLS_PER_RUN = 1 + ROUNDS * (2 + K)
WAVES_PER_RUN = 1 + ROUNDS * 3  # reason; per round: questions, the k answers at once, refine


class DelayedModel(InstantModel):
    """InstantModel's replies after a fixed delay that costs no CPU (a server's answer time). Records
    when each call started, so the benchmark can see how late the loop got to a run's first call."""

    latency_s: float = 0.1
    starts: list[float] = Field(default_factory=list)

    async def _agenerate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                         **kw: Any) -> ChatResult:
        self.starts.append(time.perf_counter())
        await asyncio.sleep(self.latency_s)
        return self._generate(messages, stop, **kw)


async def measure(levels: list[int], reps: int, latency_s: float) -> dict[str, Any]:
    switch = Switch()
    provider = TracerProvider(sampler=switch)
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(provider)
    model = DelayedModel(latency_s=latency_s, starts=[])
    r3 = build_r3_graph(model).compile()
    bare, topology = bare_langgraph(model), bare_langgraph(model, r3_topology=True)
    context = R3Context(max_rounds=ROUNDS, num_questions=K)
    inputs = {"instruction": INSTRUCTION, "images": [PNG]}

    async def r3_run(traced: bool) -> None:
        switch.on = traced
        result = await r3.ainvoke(inputs, context=context)
        assert result["usage"].calls == CALLS_PER_RUN, result["usage"]

    conditions = {
        "plain": lambda: plain_loop(model),
        "langgraph": lambda: bare.ainvoke({}),
        "langgraph_r3_topology": lambda: topology.ainvoke({}),
        "r3": lambda: r3_run(False),
        "r3_traced": lambda: r3_run(True),
        "r3_images_in_worker": lambda: r3_run(False),  # is_small_png is switched off for its batches
    }
    names = list(conditions)
    for name in names:  # warm-up: imports, the image worker pool, pydantic validators
        images_module.is_small_png = _never_small if name == "r3_images_in_worker" else is_small_png
        await asyncio.gather(*(conditions[name]() for _ in range(8)))
    ideal = WAVES_PER_RUN * latency_s
    out: dict[str, Any] = {"levels": {}}
    for level in levels:
        walls: dict[str, list[float]] = {n: [] for n in names}
        last_first_call: dict[str, list[float]] = {n: [] for n in names}
        for rep in range(reps):
            for name in names[rep % len(names):] + names[: rep % len(names)]:
                model.starts.clear()
                images_module.is_small_png = _never_small if name == "r3_images_in_worker" else is_small_png
                t0 = time.perf_counter()
                await asyncio.gather(*(conditions[name]() for _ in range(level)))
                walls[name].append(time.perf_counter() - t0)
                assert len(model.starts) == level * CALLS_PER_RUN, (name, len(model.starts))
                # a run's first call is its reason call; the level-th call to start is the last of them
                last_first_call[name].append(sorted(model.starts)[level - 1] - t0)
        rates = {n: [level / w for w in walls[n]] for n in names}
        out["levels"][level] = {
            "runs_per_s": {n: _interval(rates[n]) for n in names},
            "client_s_on_critical_path_per_batch": {n: round(statistics.median(walls[n]) - ideal, 4) for n in names},
            "last_first_call_ms": {n: round(1000 * statistics.median(last_first_call[n]), 1) for n in names},
            "rate_ratio_to_plain": {n: _ratio(rates["plain"], rates[n]) for n in names if n != "plain"},
            "r3_over_langgraph_r3_topology": _ratio(rates["langgraph_r3_topology"], rates["r3"]),
            "r3_over_r3_images_in_worker": _ratio(rates["r3_images_in_worker"], rates["r3"]),
            "walls_s": {n: [round(w, 4) for w in walls[n]] for n in names},
        }
    images_module.is_small_png = is_small_png
    out.update(reps=reps, latency_ms=latency_s * 1000, ideal_batch_s=ideal, calls_per_run=CALLS_PER_RUN,
               machine=f"{platform.machine()} python {platform.python_version()}")
    return out


def _never_small(data: bytes) -> bool:
    return False


def _interval(xs: list[float]) -> dict[str, float]:
    mid, low, high = median_interval(xs)
    return {"median": round(mid, 3), "low": round(low, 3), "high": round(high, 3)}


def _ratio(a: list[float], b: list[float]) -> dict[str, float]:
    r = ratio_bootstrap(a, b)  # b / a, paired by repetition (the same rotation slot)
    return {"ratio": round(r.ratio, 3), "low": round(r.low, 3), "high": round(r.high, 3)}


def markdown(f: dict[str, Any], note: str) -> str:
    lines = [
        "# The client's share at high concurrency (bench/concurrency_overhead.py)",
        "",
        f"A model that answers after {f['latency_ms']:.0f} ms and uses no CPU; {ROUNDS} rounds of self_questions "
        f"(k={K}), {f['calls_per_run']} calls in {WAVES_PER_RUN} waves per run, so a batch's ideal wall time is "
        f"{f['ideal_batch_s']:.2f} s at any concurrency. {f['reps']} batches per condition and level, interleaved "
        f"in a rotating order; medians with bootstrap 95% intervals. {f['machine']}.",
        "",
        "| concurrent runs | condition | runs/s [95% CI] | / plain [95% CI] | client s on the critical path per batch "
        "| last run's first call (ms) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for level, row in f["levels"].items():
        for n, v in row["runs_per_s"].items():
            ratio = row["rate_ratio_to_plain"].get(n)
            shown = f"{ratio['ratio']:.2f}x [{ratio['low']:.2f}, {ratio['high']:.2f}]" if ratio else ""
            lines.append(f"| {level} | {n} | {v['median']:.2f} [{v['low']:.2f}, {v['high']:.2f}] | {shown} | "
                         f"{row['client_s_on_critical_path_per_batch'][n]:.3f} | {row['last_first_call_ms'][n]:.0f} |")
    lines += ["", "| concurrent runs | r3 / LangGraph with R3's topology (r3graph's code) "
              "| r3 / r3 with images in a worker (small PNGs in a thread) |", "| --- | --- | --- |"]
    for level, row in f["levels"].items():
        a, b = row["r3_over_langgraph_r3_topology"], row["r3_over_r3_images_in_worker"]
        lines.append(f"| {level} | {a['ratio']:.2f}x [{a['low']:.2f}, {a['high']:.2f}] | "
                     f"{b['ratio']:.2f}x [{b['low']:.2f}, {b['high']:.2f}] |")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--out", default="concurrency_overhead", help="results file name, without suffix")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.concurrency, args.reps, args.latency_ms / 1000))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(figures, indent=2) + "\n")
    text = markdown(figures, args.note)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
