"""Scale-out scenarios for bench/load.py: R3 runs through vllm-router over vLLM replicas on 127.0.0.1.

One 2-replica cluster (router policy consistent_hash, keyed on the run id r3graph sends) serves every
scenario; scenarios that compare policies or replica counts start a second router on the same
replicas and interleave the conditions block by block:

- ``batches``: N concurrent runs x B batches, errors and every run's output (cluster_runs.jsonl);
- ``affinity``: cached prompt tokens (vLLM usage) with round_robin vs consistent_hash, fresh images;
- ``throughput``: runs/s through a router over 1 replica vs over 2;
- ``worker-kill``: a worker process SIGKILLed mid-run, another resumes every run from Postgres;
- ``replica-kill``: one replica SIGKILLed mid-load; completed / retried / failed, none hangs.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from langchain_core.callbacks import BaseCallbackHandler

from r3graph import R3Context, R3Error, build_r3_graph
from r3graph.evaluation.stats import paired_bootstrap
from r3graph.postgres import LocalPostgres
from r3graph.serving import chat_model_for_server
from r3graph.serving.cluster import VLLMCluster, VLLMRouter

BENCH = Path(__file__).resolve().parent
IMAGE = BENCH.parent / "scenes" / "r3graph_scenes" / "assets" / "example.png"
STAGES = ("reason", "reflect", "refine")  # the path of a max_rounds=1 run, in order


def log(msg: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class FreshImages:
    """A new 64x64 scene per run: its prefix is in no replica's cache yet. ``variants(k)`` renders one
    scene k times, differing in one corner pixel: the same scene for every compared condition, but a
    different image hash, so no condition is served from another's cache."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)  # one scene at a time: the same sequence as generate_scenes(seed, n)

    def variants(self, k: int) -> list[str]:
        from r3graph_scenes.world import generate_scene, render

        image = render(generate_scene(self._rng))
        urls = []
        for c in range(k):
            variant = image.copy()
            variant.putpixel((0, 0), (c, c, c))
            buf = io.BytesIO()
            variant.save(buf, "PNG")
            urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
        return urls


class FailedAttempts(BaseCallbackHandler):
    """Model calls of one run that failed (each is retried by the graph's RetryPolicy if transient)."""

    def __init__(self) -> None:
        self.failed = 0

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.failed += 1


@dataclass
class Outcome:
    index: int
    status: str  # completed | failed (typed R3Error) | untyped (any other exception) | hung
    latency_s: float
    failed_attempts: int = 0
    calls: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output: str | None = None
    error: str | None = None
    best_draft: str | None = None


async def run_one(graph: Any, index: int, image: str, context: R3Context) -> Outcome:
    attempts = FailedAttempts()
    t0 = time.perf_counter()
    inputs = {"instruction": f"Describe the image ({index}).", "images": [image]}
    try:
        # The hard cap only detects a hang: the run's own deadline (run_timeout_s) should end it first.
        result = await asyncio.wait_for(graph.ainvoke(inputs, {"callbacks": [attempts]}, context=context),
                                        context.run_timeout_s + 30)
    except R3Error as exc:
        return Outcome(index, "failed", time.perf_counter() - t0, attempts.failed,
                       error=f"{type(exc).__name__}: {str(exc)[:200]}", best_draft=exc.best_draft)
    except TimeoutError:
        return Outcome(index, "hung", time.perf_counter() - t0, attempts.failed)
    except Exception as exc:  # counted, never hidden: expected zero
        return Outcome(index, "untyped", time.perf_counter() - t0, attempts.failed,
                       error=f"{type(exc).__name__}: {str(exc)[:200]}")
    usage = result["usage"]
    return Outcome(index, "completed", time.perf_counter() - t0, attempts.failed, usage.calls,
                   usage.input_tokens, usage.cached_input_tokens, result["output"])


def graph_for(url: str, model: str) -> Any:
    return build_r3_graph(chat_model_for_server(url, model=model), pack="scenes").compile()


async def many(graph: Any, n: int, context: R3Context, images: list[str] | None = None,
               start: int = 0) -> list[Outcome]:
    """``n`` concurrent runs; on ``images`` (one per run) or all on the example image."""
    image = str(IMAGE)
    return list(await asyncio.gather(*(run_one(graph, start + i, images[i] if images else image, context)
                                       for i in range(n))))


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    c = Counter(o.status for o in outcomes)
    return {"runs": len(outcomes), "completed": c["completed"], "failed": c["failed"],
            "untyped": c["untyped"], "hung": c["hung"],
            "retried": sum(1 for o in outcomes if o.failed_attempts > 0),
            "retried_then_completed": sum(1 for o in outcomes if o.failed_attempts > 0 and o.status == "completed"),
            "failed_with_best_draft": sum(1 for o in outcomes if o.status == "failed" and o.best_draft)}


# -- scenarios ----------------------------------------------------------------------------------
async def batches(cluster: VLLMCluster, args: Any, context: R3Context, out: Path) -> dict[str, Any]:
    graph = graph_for(cluster.url, cluster.served_model_name)
    rows, everything = [], []
    for b in range(args.batches):
        t0 = time.perf_counter()
        outcomes = await many(graph, args.runs, context, start=b * args.runs)
        wall = time.perf_counter() - t0
        everything += outcomes
        rows.append({"batch": b + 1, **counts(outcomes), "wall_s": wall, "runs_per_s": args.runs / wall})
        log(f"batches: batch {b + 1}: {rows[-1]}")
    with (out / "cluster_runs.jsonl").open("w") as f:
        for o in everything:
            f.write(json.dumps(asdict(o)) + "\n")
    return {"rows": rows, "errors": sum(r["runs"] - r["completed"] for r in rows)}


async def interleaved(graphs: dict[str, Any], blocks: int, runs: int, context: R3Context,
                      images: FreshImages | None) -> dict[str, list[dict[str, Any]]]:
    """Alternate the conditions block by block (ABBA...), so drift on a shared machine hits both."""
    names = list(graphs)
    per: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for b in range(blocks):
        scenes = [images.variants(len(names)) for _ in range(runs)] if images else None
        for name in (names if b % 2 == 0 else names[::-1]):
            variant = [v[names.index(name)] for v in scenes] if scenes else None
            t0 = time.perf_counter()
            outcomes = await many(graphs[name], runs, context, variant, start=b * runs)
            wall = time.perf_counter() - t0
            done = [o for o in outcomes if o.status == "completed"]
            row = {"block": b + 1, **counts(outcomes), "wall_s": wall, "runs_per_s": runs / wall,
                   "input_tokens": sum(o.input_tokens for o in done),
                   "cached_tokens": sum(o.cached_tokens for o in done), "calls": sum(o.calls for o in done),
                   "run_shares": [o.cached_tokens / o.input_tokens if o.input_tokens else 0.0 for o in outcomes]}
            per[name].append(row)
            log(f"{name}: block {b + 1}: {row}")
    return per


def compare(per: dict[str, list[dict[str, Any]]], a: str, b: str, key: Any) -> dict[str, float]:
    """Paired bootstrap of ``key`` (one value per block, or a list per block: one per paired run)."""
    def values(name: str) -> list[float]:
        return [v for r in per[name] for v in (key(r) if isinstance(key(r), list) else [key(r)])]

    diff = paired_bootstrap(values(a), values(b))
    return {"mean": diff.mean, "low": diff.low, "high": diff.high, "pairs": diff.n}


async def affinity(cluster: VLLMCluster, args: Any, context: R3Context) -> dict[str, Any]:
    urls = [s.url for s in cluster.servers]
    # cache_aware: the router's own prefix tree, no key needed; the third condition, same scenes.
    with VLLMRouter(urls, policy="round_robin") as rr, VLLMRouter(urls, policy="cache_aware") as ca:
        graphs = {"round_robin": graph_for(rr.url, cluster.served_model_name),
                  cluster.policy: graph_for(cluster.url, cluster.served_model_name),
                  "cache_aware": graph_for(ca.url, cluster.served_model_name)}
        # Deeper runs: each refine and its checks repeat the draft, the prefix a run's stages share.
        deep = context.model_copy(update={"max_rounds": args.affinity_rounds})
        per = await interleaved(graphs, args.blocks, args.block_runs, deep, FreshImages(seed=args.seed))
    keys = ("runs", "completed", "calls", "input_tokens", "cached_tokens")
    totals = {name: {k: sum(r[k] for r in rows) for k in keys} for name, rows in per.items()}
    shares = lambda r: r["run_shares"]  # noqa: E731
    return {"blocks": per, "totals": totals, "share_diff": compare(per, "round_robin", cluster.policy, shares),
            "cache_aware_diff": compare(per, "round_robin", "cache_aware", shares)}


async def throughput(cluster: VLLMCluster, args: Any, context: R3Context) -> dict[str, Any]:
    with VLLMRouter([cluster.servers[0].url], policy=cluster.policy) as one:
        graphs = {"1 replica": graph_for(one.url, cluster.served_model_name),
                  "2 replicas": graph_for(cluster.url, cluster.served_model_name)}
        per = await interleaved(graphs, args.blocks, args.runs, context, None)
    return {"blocks": per, "runs_per_s_diff": compare(per, "1 replica", "2 replicas", lambda r: r["runs_per_s"])}


async def replica_kill(cluster: VLLMCluster, args: Any, context: R3Context) -> dict[str, Any]:
    graph = graph_for(cluster.url, cluster.served_model_name)
    victim = cluster.servers[1]

    async def kill_later() -> tuple[float, float]:
        # At least kill_after_s into the load, and while the victim is running requests: mid-request.
        await asyncio.sleep(args.kill_after_s)
        running = 0.0
        for _ in range(200):
            running = await asyncio.to_thread(running_requests, victim.url)
            if running > 0:
                break
            await asyncio.sleep(0.05)
        victim.kill()
        log(f"replica-kill: SIGKILLed replica 1 (pid {victim.pid}, {running:.0f} requests running) "
            f"{time.perf_counter() - t0:.1f} s into the load")
        return time.perf_counter(), running

    t0 = time.perf_counter()
    router_before = await asyncio.to_thread(router_counters, cluster.router.metrics_url)
    killer = asyncio.create_task(kill_later())
    outcomes = await many(graph, args.runs, context)
    killed_at, running_at_kill = await killer
    wall = time.perf_counter() - t0
    survivors = await many(graph, 4, context, start=10_000)  # after the kill: all on the live replica
    router_after = await asyncio.to_thread(router_counters, cluster.router.metrics_url)
    router = {k: router_after.get(k, 0.0) - router_before.get(k, 0.0) for k in router_after}
    return {"kill_after_s": args.kill_after_s, "wall_s": wall, "killed_at_s": killed_at - t0,
            "victim_running_at_kill": running_at_kill, "victim": victim.url, "router": router, **counts(outcomes),
            "after_kill": counts(survivors),
            "errors": sorted(Counter((o.error or "")[:90] for o in outcomes if o.error).items())[:5]}


def running_requests(server_url: str) -> float:
    """vLLM's gauge of requests running on one replica (its Prometheus /metrics)."""
    try:
        text = httpx.get(f"{server_url}/metrics", timeout=5, trust_env=False).text
    except httpx.HTTPError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:num_requests_running"))


def router_counters(metrics_url: str) -> dict[str, float]:
    """The router's retries and, per worker, requests processed and circuit-breaker failures."""
    wanted = ("vllm_router_retries_total", "vllm_router_processed_requests_total", "vllm_router_cb_outcomes_total")
    text = httpx.get(metrics_url, timeout=5, trust_env=False).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(wanted):
            key, value = line.rsplit(" ", 1)
            out[key] = out.get(key, 0.0) + float(value)
    return out


def _read_log(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    calls, finals = [], []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        (finals if "final" in record else calls).append(record.get("final", record))
    return calls, finals


def worker_kill(cluster: VLLMCluster, args: Any) -> dict[str, Any]:
    threads = [f"w{i}-{int(time.time())}" for i in range(args.worker_runs)]
    tmp = Path(tempfile.mkdtemp(prefix="r3-worker-kill-"))
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent)}

    def worker(mode: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, str(BENCH / "cluster_worker.py"), "--base-url", cluster.url,
                                 "--db", pg.conn_string, "--threads", ",".join(threads), "--mode", mode,
                                 "--log", str(tmp / f"{mode}.jsonl")], env=env, start_new_session=True)

    with LocalPostgres() as pg:
        first = worker("start")
        deadline = time.monotonic() + 300
        # Kill once every run has finished reason and some are inside reflect (the log is per call).
        while time.monotonic() < deadline and first.poll() is None:
            logged = _read_log(tmp / "start.jsonl")[0] if (tmp / "start.jsonl").exists() else []
            if len(logged) >= args.kill_at_calls:
                break
            time.sleep(0.1)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        log(f"worker-kill: SIGKILLed worker 1 after {len(logged)} logged model calls")
        second = worker("resume")
        second.wait(timeout=600)
        calls_1, _ = _read_log(tmp / "start.jsonl")
        calls_2, finals = _read_log(tmp / "resume.jsonl")
    repeated = []
    for f in finals:  # a stage finished in worker 1 (before `next`) must not be called again
        nxt = f["next"][0] if f.get("next") else None
        finished = STAGES[: STAGES.index(nxt)] if nxt in STAGES else (STAGES if nxt is None else ())
        repeated += [c for c in calls_2 if c["thread"] == f["thread"] and c["node"] in finished]
    return {"runs": len(threads), "kill_at_calls": args.kill_at_calls,
            "calls_worker_1": dict(Counter(c["node"] for c in calls_1)),
            "calls_worker_2": dict(Counter(c["node"] for c in calls_2)),
            "next_at_resume": dict(Counter((f.get("next") or ["(finished)"])[0] for f in finals)),
            "completed": sum(1 for f in finals if f.get("output")), "errors": sum(1 for f in finals if f.get("error")),
            "finished_stages_called_again": len(repeated)}


async def scenarios(cluster: VLLMCluster, args: Any, out: Path) -> dict[str, Any]:
    context = R3Context(reflect="self_questions", max_rounds=1, call_timeout_s=args.call_timeout_s,
                        run_timeout_s=args.run_timeout_s)
    wanted = args.scenario.split(",") if args.scenario != "all" else \
        ["batches", "affinity", "throughput", "worker-kill", "replica-kill"]
    log(f"warm-up: {args.warmup} runs")
    await many(graph_for(cluster.url, cluster.served_model_name), args.warmup, context, start=-1000)
    results: dict[str, Any] = {}
    for name in wanted:  # replica-kill last: it leaves one replica
        log(f"scenario {name}")
        if name == "batches":
            results[name] = await batches(cluster, args, context, out)
        elif name == "affinity":
            results[name] = await affinity(cluster, args, context)
        elif name == "throughput":
            results[name] = await throughput(cluster, args, context)
        elif name == "worker-kill":
            results[name] = await asyncio.to_thread(worker_kill, cluster, args)
        elif name == "replica-kill":
            results[name] = await replica_kill(cluster, args, context)
        else:
            raise SystemExit(f"unknown scenario {name!r}")
    return results
