"""R3 latency and throughput on real vLLM (in-process engine).

    .venv/bin/python bench/latency.py [--model DIR] [--repeats 30] [--concurrency 1 4 16 64] [--reps 4]
                                      [--waves 4] [--server] [--burn-ms 20] [--cache-off] [--spec]
                                      [--note TEXT] [--out STEM]

The server path (``--server``) starts vLLM's OpenAI server on 127.0.0.1 in development mode, for
its cache-reset endpoints.

On one engine, every run on a fresh scene image (no run is served from an earlier run's prefix):

- latency: one-shot, R3 (1 round, self_questions k=3) and R3 with its checks one by one, interleaved
  round by round in a rotating order; medians with bootstrap 95% intervals, and the ratios R3 /
  one-shot and concurrent / sequential checks with paired bootstrap intervals; the prompt tokens of
  the calls after reason that the prefix cache served, as counts;
- throughput: runs per second with 1, 4, 16 and 64 R3 runs in flight, through the graph and as the
  same calls made on the engine directly (no graph: what the engine itself gives). Paired and
  interleaved: each repetition draws one batch of ``--waves`` x concurrency images, and every
  condition runs that same batch (in a rotating order), each starting on emptied prefix,
  multimodal and encoder caches; a run starts as soon as another ends. With greedy decoding the
  conditions then ask the same calls and tokens, so what differs is how the work is driven. (With
  a fresh batch per condition and every run started at once, a batch took as long as its slowest
  run, and the 16-concurrent ratio through the server moved between 0.74x and 1.57x across runs.)

``--cache-off`` / ``--spec`` add R3 on engines of their own (prefix caching off; ngram speculative
decoding), started one after another: those are engine settings and cannot be interleaved on one
engine. Targets: R3/one-shot <= 1.8x, >= 70% of those prompt tokens from the cache. Writes
bench/results/<--out>.md and .json (default latency.md)."""

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

import httpx
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
        from r3graph_scenes.world import generate_scenes, render

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

        image = self.images.next()
        t0 = time.perf_counter()
        await self.graph.ainvoke({"instruction": "Describe the image.", "images": [image]},
                                 context=R3Context(**ctx), config={"callbacks": [rec] if rec else []})
        return time.perf_counter() - t0

    async def run_on(self, image: str, rec: Recorder | None = None, **ctx: Any) -> None:
        from r3graph import R3Context

        await self.graph.ainvoke({"instruction": "Describe the image.", "images": [image]},
                                 context=R3Context(**ctx), config={"callbacks": [rec] if rec else []})


R3: dict[str, Any] = {"max_rounds": 1, "reflect": "self_questions", "num_questions": 3}
ONE_SHOT: dict[str, Any] = {"max_rounds": 0, "reflect": "none"}
LATENCY: dict[str, dict[str, Any]] = {
    "one_shot": ONE_SHOT, "r3": R3, "r3_sequential_checks": {**R3, "concurrent_checks": False},
}


def rotated(names: list[str], i: int) -> list[str]:
    """The conditions in a different order each round (ABC, BCA, CAB...): none always goes first."""
    k = i % len(names)
    return names[k:] + names[:k]


def cache_counts(rec: Recorder) -> tuple[int, int]:
    """Cached prompt tokens and prompt tokens of the calls after reason (reflect, checks, refine)."""
    later = [c for c in rec.calls if c.node != "reason"]
    return sum(c.cached_tokens for c in later), sum(c.input_tokens for c in later)


def work_counts(recs: dict[str, Recorder], runs: int) -> dict[str, dict[str, int]]:
    """What each condition asked of the engine, as counts: model calls, prompt tokens (and how
    many the prefix cache served), output tokens, over ``runs`` runs."""
    return {name: {"runs": runs, "calls": len(rec.calls),
                   "prompt_tokens": sum(c.input_tokens for c in rec.calls),
                   "cached_prompt_tokens": sum(c.cached_tokens for c in rec.calls),
                   "output_tokens": sum(c.output_tokens for c in rec.calls)}
            for name, rec in recs.items()}


def stage_median(rec: Recorder, node: str) -> float:
    xs = [c.seconds for c in rec.calls if c.node == node]
    return statistics.median(xs) if xs else float("nan")


def burn(seconds: float) -> None:
    """Hold the CPU (and the event loop) for ``seconds``, as the graph's own code does between calls."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def direct_run(model: Any, pack: Any, image: str, rec: Recorder | None = None, burn_s: float = 0.0) -> None:
    """R3's calls for one run (reason, questions, k answers at once, refine unless every check
    passed, as the graph decides), made on the model directly, without the graph: what the engine
    does for a run, at its own speed."""
    from r3graph.context import R3Context
    from r3graph.messages import stage_messages
    from r3graph.reflect.verdicts import read_items, read_yes_no

    context = R3Context()

    async def ask(stage: str, **values: Any) -> str:
        if burn_s:
            burn(burn_s / 5)  # spread over a run's ~5 calls
        reply = await model.ainvoke(stage_messages(pack, [image], pack.render(stage, **values)),
                                    {"callbacks": [rec] if rec else []},
                                    **context.sampling_for(stage, pack.max_tokens).as_kwargs())
        return str(reply.content).strip()

    instruction = "Describe the image."
    draft = await ask("reason", instruction=instruction)
    questions = read_items(await ask("questions", instruction=instruction, draft=draft, k=3), 3, questions=True)
    answers = await asyncio.gather(*(ask("answer", instruction=instruction, question=q) for q in questions))
    checked = [(q, a, read_yes_no(a, yes_words=pack.yes_words, no_words=pack.no_words).verdict == "yes")
               for q, a in zip(questions, answers, strict=True)]
    if questions and all(ok for _, _, ok in checked):
        return  # the draft passed: the graph stops here too (no refine)
    await ask("refine", instruction=instruction, draft=draft, findings=pack.render_findings(checked))


ENGINE_KW: dict[str, Any] = {}
# --waves: each throughput batch is WAVES x level runs with at most level in flight (see sustained).
WAVES = 4
# --burn-ms: a third throughput condition, the direct calls plus that much client CPU per run (spent
# on the event loop between calls): does the graph's own CPU alone explain its throughput deficit?
BURN_S = 0.0


async def with_engine(model_dir: str, **kw: Any) -> Any:
    from r3graph.serving import ChatVLLMEngine

    return await ChatVLLMEngine(model=model_dir, **{**ENGINE_KW, **kw}).astart()


def interval(a: list[float], b: list[float], **kw: Any) -> list[float]:
    from r3graph.evaluation.stats import ratio_bootstrap

    r = ratio_bootstrap(a, b, **kw)
    return [round(r.ratio, 3), round(r.low, 3), round(r.high, 3)]


async def latency(b: Bench, n: int, r: dict[str, Any]) -> None:
    """One-shot, R3 and R3 with sequential checks, interleaved on one engine, fresh images."""
    from r3graph.evaluation.stats import median_interval

    times: dict[str, list[float]] = {name: [] for name in LATENCY}
    rec = Recorder()
    for i in range(n):
        for name in rotated(list(LATENCY), i):
            times[name].append(await b.run(rec if name == "r3" else None, **LATENCY[name]))
    for name, xs in times.items():
        r[f"{name}_s"] = [round(v, 4) for v in median_interval(xs)]
    r["r3_over_one_shot"] = interval(times["one_shot"], times["r3"])
    r["concurrent_over_sequential_checks"] = interval(times["r3_sequential_checks"], times["r3"])
    r["cached_prompt_tokens_after_reason"], r["prompt_tokens_after_reason"] = cache_counts(rec)
    r["model_calls_r3"] = len(rec.calls)
    r["r3_runs"] = n
    for node in sorted({c.node for c in rec.calls}):  # where an R3 run's time goes
        r[f"stage_{node}_call_s"] = round(stage_median(rec, node), 4)
        r[f"stage_{node}_calls"] = sum(c.node == node for c in rec.calls)


def conditions() -> list[str]:
    return ["graph", "direct", *(["direct_burn"] if BURN_S else [])]


def jobs_for(name: str, b: Bench, model: Any, pack: Any, batch: list[str], rec: Recorder) -> list[Any]:
    """One condition's runs over ``batch``: through the graph, or the same calls made directly."""
    if name == "graph":
        return [lambda image=image: b.run_on(image, rec, **R3) for image in batch]
    burn_s = BURN_S * (name == "direct_burn")
    return [lambda image=image: direct_run(model, pack, image, rec, burn_s) for image in batch]


async def sustained(level: int, jobs: list[Any]) -> float:
    """Runs per second with at most ``level`` runs in flight, a new one starting as one ends: the
    batch's time is not just its slowest run's, as it is when ``level`` runs start together."""
    gate = asyncio.Semaphore(level)

    async def one(job: Any) -> None:
        async with gate:
            await job()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(job) for job in jobs))
    return len(jobs) / (time.perf_counter() - t0)


async def reset_engine_caches(model: Any) -> None:
    """Empty the in-process engine's prefix, multimodal and encoder caches (between conditions)."""
    from r3graph.serving._loop import ENGINE_LOOP

    async def reset() -> None:
        engine = await model._engine()
        if not await engine.reset_prefix_cache():  # refused while blocks are held
            raise RuntimeError("the engine refused to empty its prefix cache between conditions")
        await engine.reset_mm_cache()
        await engine.reset_encoder_cache()

    await ENGINE_LOOP.run(reset())


async def throughput(b: Bench, model: Any, pack: Any, levels: list[int], reps: int, r: dict[str, Any]) -> None:
    """Runs per second at each concurrency, through the graph and as direct calls, interleaved.
    Paired: each repetition draws one batch of images that every condition runs, each starting on
    emptied caches, so the conditions do the same work and differ only in how it is driven."""
    from r3graph.evaluation.stats import mean

    for level in levels:
        rates: dict[str, list[float]] = {name: [] for name in conditions()}
        recs = {name: Recorder() for name in rates}
        for rep in range(reps):
            batch = [b.images.next() for _ in range(level * WAVES)]
            for name in rotated(list(rates), rep):
                await reset_engine_caches(model)
                rates[name].append(await sustained(level, jobs_for(name, b, model, pack, batch, recs[name])))
        r[f"runs_per_s_{level}"] = {k: [round(x, 3) for x in v] for k, v in rates.items()}
        r[f"work_{level}"] = work_counts(recs, level * WAVES * reps)
        r[f"graph_over_direct_{level}"] = interval(rates["direct"], rates["graph"], center=mean)
        if BURN_S:
            r[f"direct_burn_over_direct_{level}"] = interval(rates["direct"], rates["direct_burn"], center=mean)


async def reset_server_caches(client: Any) -> None:
    """The server's prefix, multimodal and encoder caches emptied (vLLM's dev-mode endpoints)."""
    for path in ("/reset_prefix_cache", "/reset_mm_cache", "/reset_encoder_cache"):
        reply = await client.post(path)
        reply.raise_for_status()
        if path == "/reset_prefix_cache" and not reply.json().get("success"):  # refused while blocks are held
            raise RuntimeError("the server refused to empty its prefix cache between conditions")


def cpu_seconds(process: Any) -> float:
    """User + system CPU of a process and its descendants (psutil), 0 for a process gone."""
    import psutil

    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def server_throughput(args: argparse.Namespace, images: Images, r: dict[str, Any]) -> None:
    """The same throughput comparison through vLLM's OpenAI-compatible server on 127.0.0.1, with
    where the CPU goes per run: this process (graph + HTTP client), the API server process (HTTP,
    chat template, image decoding), the engine core and its worker."""
    import psutil

    from r3graph.prompts import load_pack
    from r3graph.serving import VLLMServer, chat_model_for_server

    # The server's own log is kept: a server that dies mid-benchmark must say why.
    # The cache-reset endpoints (between conditions) exist only in vLLM's development mode: this
    # benchmark's own server, on 127.0.0.1, for as long as the benchmark runs (its process only).
    server = VLLMServer(args.model, startup_timeout=900, extra_env={"VLLM_SERVER_DEV_MODE": "1"},
                        log_path=REPO / ".cache/logs/latency-server.log").start()
    client = httpx.AsyncClient(base_url=server.url, timeout=60)
    try:
        model = chat_model_for_server(server.url)
        pack = load_pack(args.pack)
        b = Bench(model, args.pack, images)
        await b.run(**R3)
        await direct_run(model, pack, images.next())
        api = psutil.Process(server.pid)
        me = psutil.Process()
        for level in args.server_concurrency:
            rates: dict[str, list[float]] = {name: [] for name in conditions()}
            recs = {name: Recorder() for name in rates}
            cpu: dict[str, dict[str, float]] = {name: {"client": 0.0, "api_server": 0.0, "engine": 0.0}
                                                for name in rates}
            for rep in range(args.reps):
                batch = [images.next() for _ in range(level * WAVES)]
                for name in rotated(list(rates), rep):
                    await reset_server_caches(client)
                    api_only = api.cpu_times()
                    before = (me.cpu_times(), api_only.user + api_only.system, cpu_seconds(api))
                    rates[name].append(await sustained(level, jobs_for(name, b, model, pack, batch, recs[name])))
                    api_after = api.cpu_times()
                    mine = me.cpu_times()
                    api_s = api_after.user + api_after.system - before[1]
                    cpu[name]["client"] += (mine.user + mine.system - before[0].user - before[0].system) / len(batch)
                    cpu[name]["api_server"] += api_s / len(batch)
                    cpu[name]["engine"] += (cpu_seconds(api) - before[2] - api_s) / len(batch)
            r[f"server_runs_per_s_{level}"] = {k: [round(x, 3) for x in v] for k, v in rates.items()}
            r[f"server_work_{level}"] = work_counts(recs, level * WAVES * args.reps)
            r[f"server_graph_over_direct_{level}"] = interval(rates["direct"], rates["graph"],
                                                              center=statistics.mean)
            if BURN_S:
                r[f"server_direct_burn_over_direct_{level}"] = interval(rates["direct"], rates["direct_burn"],
                                                                        center=statistics.mean)
            r[f"server_cpu_s_per_run_{level}"] = {
                name: {k: round(v / args.reps, 4) for k, v in parts.items()} for name, parts in cpu.items()
            }
    finally:
        await client.aclose()
        server.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from r3graph.prompts import load_pack

    images, r = Images(), dict[str, Any]()
    if not args.skip_engine:
        eng = await with_engine(args.model)
        try:
            b = Bench(eng, args.pack, images)
            await b.run(**R3)  # warm-up: grammar compile, first-request paths
            await direct_run(eng, load_pack(args.pack), images.next())
            await latency(b, args.repeats, r)
            await throughput(b, eng, load_pack(args.pack), args.concurrency, args.reps, r)
        finally:
            await eng.ashutdown()  # one engine at a time on this machine

    if args.server:
        await server_throughput(args, images, r)
    # Engine settings need engines of their own: started one after another, not interleaved.
    if args.cache_off:
        eng = await with_engine(args.model, enable_prefix_caching=False)
        b = Bench(eng, args.pack, images)
        await b.run(**R3)
        r["r3_cache_off_s"] = statistics.median([await b.run(**R3) for _ in range(args.repeats)])
        await eng.ashutdown()
    if args.spec:
        eng = await with_engine(args.model, speculative_config=NGRAM)
        b = Bench(eng, args.pack, images)
        await b.run(**R3)
        rec = Recorder()
        r["r3_ngram_spec_s"] = statistics.median([await b.run(rec, **R3) for _ in range(args.repeats)])
        r["refine_call_ngram_s"] = stage_median(rec, "refine")
        await eng.ashutdown()
    return r


def fmt_interval(v: list[float], unit: str = "x") -> str:
    return f"{v[0]:.2f}{unit} [{v[1]:.2f}, {v[2]:.2f}]"


def levels_of(r: dict[str, Any], prefix: str) -> list[int]:
    """The concurrency levels measured under ``prefix<level>`` keys, in numeric order."""
    return sorted(int(k.removeprefix(prefix)) for k in r if k.startswith(prefix))


def server_rows(r: dict[str, Any]) -> list[str]:
    rows = []
    for level in levels_of(r, "server_graph_over_direct_"):
        key = f"server_graph_over_direct_{level}"
        rates, cpu = r[f"server_runs_per_s_{level}"], r[f"server_cpu_s_per_run_{level}"]
        g, d = statistics.mean(rates["graph"]), statistics.mean(rates["direct"])
        rows.append(f"| server, {level} concurrent: runs/s graph / direct (means {g:.2f} / {d:.2f}) "
                    f"| {fmt_interval(r[key])} |  |")
        if f"server_direct_burn_over_direct_{level}" in r:
            rows.append(f"| server, {level} concurrent: runs/s direct + {BURN_S * 1000:.0f} ms client CPU per run / "
                        f"direct (mean {statistics.mean(rates['direct_burn']):.2f}) "
                        f"| {fmt_interval(r[f'server_direct_burn_over_direct_{level}'])} |  |")
        for name, parts in cpu.items():
            rows.append(f"| server, {level} concurrent, {name}: CPU s per run (client / API server / engine) "
                        f"| {parts['client']:.3f} / {parts['api_server']:.3f} / {parts['engine']:.3f} |  |")
        rows += work_rows(r.get(f"server_work_{level}"), f"server, {level} concurrent")
    return rows


def work_rows(work: dict[str, dict[str, int]] | None, label: str) -> list[str]:
    """Counts: what graph and direct runs asked of the engine (same calls, or not)."""
    return [f"| {label}, {name}: calls / prompt tokens (cached) / output tokens in {w['runs']} runs "
            f"| {w['calls']} / {w['prompt_tokens']} ({w['cached_prompt_tokens']}) / {w['output_tokens']} |  |"
            for name, w in (work or {}).items()]


def table(r: dict[str, Any]) -> str:
    lines = ["| measure | value [95% CI] | target |", "| --- | --- | --- |"]
    lines += server_rows(r)
    if "r3_s" not in r:
        return "\n".join(lines)
    for name in LATENCY:
        lines.append(f"| {name.replace('_', ' ')}, median s | {fmt_interval(r[f'{name}_s'], '')} |  |")
    lines += [
        f"| R3 / one-shot (paired) | {fmt_interval(r['r3_over_one_shot'])} | <= 1.8x |",
        f"| concurrent / sequential checks (paired) | {fmt_interval(r['concurrent_over_sequential_checks'])} | < 1 |",
        f"| prompt tokens after reason served from the prefix cache | {r['cached_prompt_tokens_after_reason']} of "
        f"{r['prompt_tokens_after_reason']} | >= 70% |",
        f"| model calls in {r['r3_runs']} R3 runs | {r['model_calls_r3']} |  |",
    ]
    for level in levels_of(r, "graph_over_direct_"):
        key = f"graph_over_direct_{level}"
        rates = r[f"runs_per_s_{level}"]
        g, d = statistics.mean(rates["graph"]), statistics.mean(rates["direct"])
        lines.append(f"| {level} concurrent: runs/s graph / direct (means {g:.2f} / {d:.2f}) "
                     f"| {fmt_interval(r[key])} |  |")
        if f"direct_burn_over_direct_{level}" in r:
            lines.append(f"| {level} concurrent: runs/s direct + {BURN_S * 1000:.0f} ms client CPU per run / direct "
                         f"(mean {statistics.mean(rates['direct_burn']):.2f}) "
                         f"| {fmt_interval(r[f'direct_burn_over_direct_{level}'])} |  |")
        lines += work_rows(r.get(f"work_{level}"), f"{level} concurrent")
    for key, label in (("r3_cache_off_s", "R3 with prefix caching off (own engine), median s"),
                       ("r3_ngram_spec_s", "R3 with ngram speculation (own engine), median s"),
                       ("refine_call_ngram_s", "refine call with ngram speculation, median s")):
        if key in r:
            lines.append(f"| {label} | {r[key]:.3f} |  |")
    lines += [f"| {k.removeprefix('stage_').replace('_', ' ')} | {v} |  |" for k, v in r.items()
              if k.startswith("stage_")]
    return "\n".join(lines)


def main() -> None:
    from r3graph.serving.env import apply_vllm_env_defaults
    from r3graph_scenes.plugin import SCENES_VLM_DIR

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shipped = (SCENES_VLM_DIR / "config.json").is_file()
    ap.add_argument("--model", default=str(SCENES_VLM_DIR if shipped else REPO / ".cache/tiny-idefics3"))
    ap.add_argument("--pack", default=None, help="default: scenes for scenes-vlm, else default")
    ap.add_argument("--repeats", type=int, default=30, help="interleaved rounds of the latency conditions")
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 16, 64])
    ap.add_argument("--reps", type=int, default=4, help="interleaved repetitions per concurrency level")
    ap.add_argument("--server", action="store_true", help="also throughput through vLLM's OpenAI server")
    ap.add_argument("--server-concurrency", type=int, nargs="*", default=[16, 64])
    ap.add_argument("--skip-engine", action="store_true", help="only the --server/--cache-off/--spec parts")
    ap.add_argument("--cache-off", action="store_true", help="also R3 on an engine without prefix caching")
    ap.add_argument("--spec", action="store_true", help="also R3 on an engine with ngram speculation")
    ap.add_argument("--note", default="", help="a line for the results file (e.g. how loaded the machine was)")
    ap.add_argument("--compile", action="store_true", help="torch.compile (enforce_eager=False)")
    ap.add_argument("--out", default="latency", help="results file stem under bench/results")
    ap.add_argument("--waves", type=int, default=4,
                    help="each throughput batch: this many times the concurrency in runs, that many in flight")
    ap.add_argument("--burn-ms", type=float, default=0.0,
                    help="add a throughput condition: direct calls plus this much client CPU per run")
    args = ap.parse_args()
    global BURN_S, WAVES
    BURN_S, WAVES = args.burn_ms / 1000, args.waves
    if args.compile:
        ENGINE_KW["enforce_eager"] = False
    args.pack = args.pack or ("scenes" if "scenes" in Path(args.model).name else "default")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    apply_vllm_env_defaults()
    r = asyncio.run(main_async(args))
    head = (f"model `{Path(args.model).name}`, pack `{args.pack}`, {args.repeats} interleaved rounds, "
            f"{args.reps} repetitions per concurrency level (paired: one image batch of {args.waves} x the "
            f"concurrency per repetition, run by every condition on emptied caches, at most the concurrency "
            f"in flight), "
            f"{platform.machine()} {os.cpu_count()} CPUs, "
            f"{'vLLM OpenAI-compatible server' if args.skip_engine else 'vLLM in-process engine'} (block 32, "
            f"{'torch.compile' if args.compile else 'eager'}), "
            f"{time.strftime('%Y-%m-%d %H:%M')}. {args.note}").strip()
    out = f"# R3 latency\n\n{head}\n\n{table(r)}\n"
    print(out)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(out)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"setup": head, **r}, indent=2) + "\n")


if __name__ == "__main__":
    main()
