"""The markdown report of bench/cluster_load.py's scenarios (bench/results/cluster.md)."""

from __future__ import annotations

from typing import Any


def _ci(d: dict[str, float], fmt: str = "{:+.3f}") -> str:
    return f"{fmt.format(d['mean'])} [{fmt.format(d['low'])}, {fmt.format(d['high'])}] ({d['pairs']} pairs)"


def markdown(result: dict[str, Any]) -> str:
    meta, r = result["meta"], result["scenarios"]
    lines = ["# R3 past one machine: replicas behind vllm-router", "",
             f"{meta['replicas']} vLLM replicas of `{meta['model']}` behind `vllm-router` "
             f"(policy `{meta['policy']}`, key: the run id in `X-Session-ID`), all on 127.0.0.1; "
             f"self_questions, max_rounds=1; {meta['machine']}, {meta['date']}. Command: `{meta['command']}`. "
             f"Cluster start {meta['start_s']:.0f} s; total {meta['total_s']:.0f} s. The machine is shared with other "
             "jobs and has 2 cores, so the replicas share them: timings are indicative, counts are exact.", ""]
    if "batches" in r:
        lines += ["## Concurrent runs through the router", "",
                  "| batch | runs | completed | failed | untyped | hung | retried | wall (s) | runs/s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {b['batch']} | {b['runs']} | {b['completed']} | {b['failed']} | {b['untyped']} | {b['hung']} "
                  f"| {b['retried']} | {b['wall_s']:.1f} | {b['runs_per_s']:.2f} |" for b in r["batches"]["rows"]]
        lines += ["", f"Errors: **{r['batches']['errors']}**. Every run's output: `cluster_runs.jsonl`.", ""]
    if "affinity" in r:
        a, cluster_policy = r["affinity"], meta["policy"]
        lines += ["## Prefix cache: round_robin vs session affinity vs cache_aware", "",
                  f"max_rounds={meta.get('affinity_rounds')}. "
                  "Each scene is new (no earlier run's prefix in any cache) and runs under every policy, its "
                  "copies differing in one corner pixel (another image hash: no run hits another's "
                  "cache). The routers front "
                  "the same 2 replicas and alternate block by block. Cached = `usage.prompt_tokens_details."
                  "cached_tokens` summed over every model call of every completed run.", "",
                  "| policy | runs | model calls | prompt tokens | cached prompt tokens | share |",
                  "|---|---|---|---|---|---|"]
        for name, t in a["totals"].items():
            share = t["cached_tokens"] / t["input_tokens"] if t["input_tokens"] else 0.0
            lines.append(f"| {name} | {t['completed']}/{t['runs']} | {t['calls']} | {t['input_tokens']} "
                         f"| {t['cached_tokens']} | {share:.1%} |")
        lines += ["", f"Cache share per run minus round_robin's (the same scene under each policy, paired; 95% "
                  f"bootstrap CI): {cluster_policy}: {_ci(a['share_diff'])}; cache_aware: "
                  f"{_ci(a['cache_aware_diff'])}.", ""]
    if "throughput" in r:
        t = r["throughput"]
        lines += ["## Throughput: 1 replica vs 2", "", "| condition | block | runs | completed | wall (s) | runs/s |",
                  "|---|---|---|---|---|---|"]
        for name, rows in t["blocks"].items():
            lines += [f"| {name} | {b['block']} | {b['runs']} | {b['completed']} | {b['wall_s']:.1f} "
                      f"| {b['runs_per_s']:.2f} |" for b in rows]
        lines += ["", f"runs/s, 2 replicas minus 1: {_ci(t['runs_per_s_diff'], '{:+.2f}')}. Both replicas share "
                  "the same 2 CPU cores here, so a second replica adds no compute; on separate GPUs or machines "
                  "it would.", ""]
    if "worker-kill" in r:
        w = r["worker-kill"]
        lines += ["## A worker process killed mid-run, resumed by another from Postgres", "",
                  f"{w['runs']} runs in worker process 1 (checkpoints in a local PostgreSQL, `durability=\"sync\"`), "
                  f"SIGKILLed after {w['kill_at_calls']} model calls had started; worker process 2 resumed every "
                  "thread from its checkpoint.", "",
                  f"- model calls by node, worker 1: {w['calls_worker_1']}",
                  f"- next stage per run when worker 2 read the checkpoints: {w['next_at_resume']}",
                  f"- model calls by node, worker 2: {w['calls_worker_2']}",
                  f"- runs completed: {w['completed']} / {w['runs']}, errors: {w['errors']}",
                  "- calls worker 2 made for stages a run had already finished: "
                  f"**{w['finished_stages_called_again']}**",
                  ""]
    if "replica-kill" in r:
        k = r["replica-kill"]
        lines += ["## One replica killed mid-load", "",
                  f"{k['runs']} concurrent runs; replica 1 SIGKILLed {k['killed_at_s']:.1f} s in. Graph "
                  "RetryPolicy: 3 attempts (0.5 s, 1 s backoff); router: circuit opens after 3 failures, health "
                  "checked every 1 s.", "",
                  "| completed | retried (of which completed) | failed, typed (with best draft) | untyped | hung "
                  "| wall (s) |",
                  "|---|---|---|---|---|---|",
                  f"| {k['completed']} | {k['retried']} ({k['retried_then_completed']}) | {k['failed']} "
                  f"({k['failed_with_best_draft']}) | {k['untyped']} | {k['hung']} | {k['wall_s']:.1f} |", "",
                  f"{k['victim_running_at_kill']:.0f} requests were running on the killed replica. Runs started "
                  f"after the kill: {k['after_kill']['completed']}/{k['after_kill']['runs']} completed. Errors seen: "
                  f"{k['errors'] or 'none'}. What the router did meanwhile (its Prometheus counters, change over "
                  "the scenario):", ""]
        lines += [f"- `{name}`: {value:.0f}" for name, value in sorted(k["router"].items()) if value]
        lines.append("")
    return "\n".join(lines)
