"""Load: N concurrent R3 runs against a real vLLM server, repeated for B batches.

Starts ``VLLMServer`` on the shipped model (127.0.0.1, free port), runs B batches of N concurrent
R3 runs (self_questions, max_rounds=1) through one shared ``chat_model_for_server`` client, and
reports per batch: errors, throughput (runs/s), per-run latency p50/p95/p99, and the RSS of this
process (and of the server's process group) before and after, to show no growth across batches.
Bounded: at most B x N runs and a hard wall-clock cap (``--cap-s``) after which a watchdog stops the
server and exits. The server is always stopped by the script.

    flock /tmp/r3graph-vllm.lock .venv/bin/python bench/load.py               # N=64, B=3
    flock /tmp/r3graph-vllm.lock .venv/bin/python bench/load.py --runs 16 --batches 2

Writes bench/results/load.md and load.json.

Past one server (``--scenario``, see bench/cluster_load.py): 2 replicas behind vllm-router, writing
bench/results/cluster.md and cluster.json:

    flock /tmp/r3graph-vllm.lock .venv/bin/python bench/load.py --scenario all
    .venv/bin/python bench/load.py --scenario affinity,replica-kill --runs 32
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from r3graph import R3Context, R3Error, build_r3_graph
from r3graph.serving import VLLMServer, chat_model_for_server
from r3graph.serving.env import apply_vllm_env_defaults
from r3graph_scenes.plugin import SCENES_VLM_DIR

RESULTS = Path(__file__).parent / "results"
IMAGE = Path(__file__).resolve().parents[1] / "scenes" / "r3graph_scenes" / "assets" / "example.png"


def log(msg: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def rss_mb(proc: psutil.Process) -> float:
    return proc.memory_info().rss / 2**20


def group_rss_mb(pgid: int | None) -> float | None:
    """RSS summed over the server's process group (API server, engine core, workers)."""
    if pgid is None:
        return None
    total = 0
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                total += p.memory_info().rss
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


async def one_run(graph: Any, index: int, context: R3Context) -> tuple[float, str | None]:
    t0 = time.perf_counter()
    try:
        result = await graph.ainvoke({"instruction": f"Caption the image ({index}).", "images": [str(IMAGE)]},
                                     context=context)
        error = None if result.get("output") else "empty output"
    except R3Error as exc:
        error = f"{type(exc).__name__}: {str(exc)[:160]}"
    except Exception as exc:  # counted, never hidden: the bench expects zero
        error = f"unexpected {type(exc).__name__}: {str(exc)[:160]}"
    return time.perf_counter() - t0, error


async def run_batches(srv: VLLMServer, args: argparse.Namespace) -> dict[str, Any]:
    chat = chat_model_for_server(srv.base_url, model=srv.served_model_name)
    graph = build_r3_graph(chat, pack="scenes").compile()
    context = R3Context(reflect="self_questions", max_rounds=args.max_rounds,
                        call_timeout_s=args.call_timeout_s, run_timeout_s=args.run_timeout_s)
    me = psutil.Process()
    log(f"warm-up: {args.warmup} runs")
    warm = await asyncio.gather(*(one_run(graph, -i, context) for i in range(args.warmup)))
    batches = []
    for b in range(args.batches):
        gc.collect()
        before = {"rss_mb": rss_mb(me), "server_rss_mb": group_rss_mb(srv.pid), "threads": me.num_threads(),
                  "fds": me.num_fds(), "tcp": len(me.net_connections(kind="tcp"))}
        t0 = time.perf_counter()
        outcomes = await asyncio.gather(*(one_run(graph, i, context) for i in range(args.runs)))
        wall = time.perf_counter() - t0
        gc.collect()
        await asyncio.sleep(0.2)  # let closed connections settle before counting them
        after = {"rss_mb": rss_mb(me), "server_rss_mb": group_rss_mb(srv.pid), "threads": me.num_threads(),
                 "fds": me.num_fds(), "tcp": len(me.net_connections(kind="tcp"))}
        latencies = [lat for lat, _ in outcomes]
        errors = [err for _, err in outcomes if err]
        batch = {
            "batch": b + 1, "runs": args.runs, "errors": len(errors), "error_samples": errors[:3],
            "wall_s": wall, "runs_per_s": args.runs / wall,
            "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95),
            "p99_s": percentile(latencies, 99), "max_s": max(latencies),
            "before": before, "after": after,
        }
        batches.append(batch)
        log(f"batch {b + 1}: {len(errors)} errors, {batch['runs_per_s']:.2f} runs/s, "
            f"p50 {batch['p50_s']:.2f}s p95 {batch['p95_s']:.2f}s p99 {batch['p99_s']:.2f}s, "
            f"RSS {before['rss_mb']:.0f} -> {after['rss_mb']:.0f} MB")
    return {"warmup_errors": sum(1 for _, e in warm if e), "batches": batches}


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        "# R3 under load",
        "",
        f"{meta['runs']} concurrent R3 runs (self_questions, max_rounds={meta['max_rounds']}) x {meta['batches']} "
        f"batches against a vLLM server on 127.0.0.1 (`{meta['model']}`, pack `scenes`), one shared "
        f"`chat_model_for_server` client; {meta['machine']}, {meta['date']}.",
        "",
        f"Command: `{meta['command']}`. Server start-up {meta['server_start_s']:.1f} s (not in any batch); "
        f"{meta['warmup']} warm-up runs first ({result['warmup_errors']} errors). Total wall "
        f"{meta['total_s']:.1f} s (cap {meta['cap_s']:.0f} s).",
        "",
        "| batch | runs | errors | wall (s) | runs/s | p50 (s) | p95 (s) | p99 (s) | max (s) "
        "| RSS before (MB) | RSS after (MB) | server RSS before -> after (MB) | threads | fds | tcp |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in result["batches"]:
        bf, af = b["before"], b["after"]
        server = (f"{bf['server_rss_mb']:.0f} -> {af['server_rss_mb']:.0f}"
                  if bf["server_rss_mb"] is not None and af["server_rss_mb"] is not None else "-")
        lines.append(
            f"| {b['batch']} | {b['runs']} | {b['errors']} | {b['wall_s']:.2f} | {b['runs_per_s']:.2f} "
            f"| {b['p50_s']:.2f} | {b['p95_s']:.2f} | {b['p99_s']:.2f} | {b['max_s']:.2f} "
            f"| {bf['rss_mb']:.0f} | {af['rss_mb']:.0f} | {server} "
            f"| {bf['threads']} -> {af['threads']} | {bf['fds']} -> {af['fds']} | {bf['tcp']} -> {af['tcp']} |"
        )
    s = result["summary"]
    lines += [
        "",
        f"- errors: {s['errors']} of {s['runs']} runs",
        f"- throughput: {s['runs_per_s_min']:.2f} to {s['runs_per_s_max']:.2f} runs/s per batch",
        f"- RSS of this process after batch 1 -> after the last batch: {s['rss_after_first_mb']:.0f} -> "
        f"{s['rss_after_last_mb']:.0f} MB ({s['rss_growth_mb']:+.0f} MB)",
        "",
    ]
    if result.get("aborted"):
        lines.insert(2, f"**Aborted: {result['aborted']}**\n")
    return "\n".join(lines)


def summarise(batches: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": sum(b["runs"] for b in batches),
        "errors": sum(b["errors"] for b in batches),
        "runs_per_s_min": min(b["runs_per_s"] for b in batches),
        "runs_per_s_max": max(b["runs_per_s"] for b in batches),
        "rss_after_first_mb": batches[0]["after"]["rss_mb"],
        "rss_after_last_mb": batches[-1]["after"]["rss_mb"],
        "rss_growth_mb": batches[-1]["after"]["rss_mb"] - batches[0]["after"]["rss_mb"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=64, help="concurrent runs per batch (N)")
    parser.add_argument("--batches", type=int, default=3, help="batches (B)")
    parser.add_argument("--max-rounds", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=4, help="untimed runs before the first batch")
    parser.add_argument("--call-timeout-s", type=float, default=120.0)
    parser.add_argument("--run-timeout-s", type=float, default=300.0)
    parser.add_argument("--cap-s", type=float, default=900.0, help="hard wall-clock cap, server start included")
    parser.add_argument("--model-dir", default=str(SCENES_VLM_DIR))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--scenario", default="single",
                        help="single (one server, as before), or comma-separated cluster scenarios: batches, "
                        "affinity, throughput, worker-kill, replica-kill, or all (bench/cluster_load.py)")
    parser.add_argument("--replicas", type=int, default=2, help="cluster scenarios: vLLM replicas")
    parser.add_argument("--blocks", type=int, default=4, help="affinity/throughput: interleaved blocks per condition")
    parser.add_argument("--block-runs", type=int, default=8, help="affinity: concurrent runs per block")
    parser.add_argument("--seed", type=int, default=4242, help="affinity: scene images")
    parser.add_argument("--affinity-rounds", type=int, default=3, help="affinity: max_rounds of each run")
    parser.add_argument("--kill-after-s", type=float, default=3.0,
                        help="replica-kill: seconds into the load (then as soon as the replica is mid-request)")
    parser.add_argument("--worker-runs", type=int, default=8, help="worker-kill: runs in the killed worker")
    parser.add_argument("--kill-at-calls", type=int, default=14, help="worker-kill: kill after this many calls")
    args = parser.parse_args()
    if args.scenario != "single":
        return cluster_main(args)
    if not (1 <= args.runs <= 512 and 1 <= args.batches <= 20):
        parser.error("--runs must be 1..512 and --batches 1..20")

    apply_vllm_env_defaults()
    started = time.perf_counter()
    srv = VLLMServer(args.model_dir, startup_timeout=min(400.0, args.cap_s))
    stop_lock = threading.Lock()

    def stop_server() -> None:
        with stop_lock:
            srv.stop()

    def watchdog() -> None:  # the hard cap holds even if the event loop is stuck
        log(f"hard cap of {args.cap_s:.0f} s reached: stopping the server and exiting")
        stop_server()
        os._exit(3)

    timer = threading.Timer(args.cap_s, watchdog)
    timer.daemon = True
    timer.start()
    result: dict[str, Any] = {}
    try:
        log(f"starting vLLM server on {args.model_dir}")
        srv.start()
        server_start_s = time.perf_counter() - started
        log(f"server up at {srv.base_url} in {server_start_s:.1f} s (pid {srv.pid})")
        left = args.cap_s - (time.perf_counter() - started) - 30  # leave time to stop and write
        try:
            result = asyncio.run(asyncio.wait_for(run_batches(srv, args), timeout=left))
        except TimeoutError:
            result = {"warmup_errors": 0, "batches": [], "aborted": f"cap of {args.cap_s:.0f} s reached"}
    finally:
        stop_server()
        timer.cancel()
    total_s = time.perf_counter() - started
    if not result.get("batches"):
        log(f"no batch completed: {result.get('aborted')}")
        return 2
    result["meta"] = {
        "command": "python bench/load.py " + shlex.join(sys.argv[1:]),
        "runs": args.runs, "batches": args.batches, "max_rounds": args.max_rounds, "warmup": args.warmup,
        "model": Path(args.model_dir).name, "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d %H:%M"), "server_start_s": server_start_s, "total_s": total_s,
        "cap_s": args.cap_s,
    }
    result["summary"] = summarise(result["batches"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    (out / "load.md").write_text(text)
    (out / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    return 0 if result["summary"]["errors"] == 0 else 1


def cluster_main(args: argparse.Namespace) -> int:
    """The scale-out scenarios on one cluster, stopped (every replica and the router) at the end."""
    from cluster_load import scenarios
    from cluster_report import markdown as cluster_markdown

    from r3graph.serving.cluster import VLLMCluster

    apply_vllm_env_defaults()
    started = time.perf_counter()
    cluster = VLLMCluster(args.model_dir, replicas=args.replicas, startup_timeout=600)
    watchdog = threading.Timer(args.cap_s, lambda: (log("hard cap reached"), cluster.stop(), os._exit(3)))
    watchdog.daemon = True
    watchdog.start()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        log(f"starting {args.replicas} replicas and vllm-router")
        cluster.start()
        start_s = time.perf_counter() - started
        log(f"router at {cluster.url} over {[s.url for s in cluster.servers]} in {start_s:.0f} s")
        results = asyncio.run(scenarios(cluster, args, out))
    finally:
        cluster.stop()
        watchdog.cancel()
    result = {"meta": {"command": "python bench/load.py " + shlex.join(sys.argv[1:]), "replicas": args.replicas,
                       "policy": cluster.policy, "model": Path(args.model_dir).name,
                       "affinity_rounds": args.affinity_rounds,
                       "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
                       "date": time.strftime("%Y-%m-%d %H:%M"),
                       "start_s": start_s, "total_s": time.perf_counter() - started},
              "scenarios": results}
    (out / "cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    text = cluster_markdown(result)
    (out / "cluster.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
