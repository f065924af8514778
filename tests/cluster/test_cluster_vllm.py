"""Two real vLLM replicas behind vllm-router (one module-scoped cluster, after every other server test):
runs through the router, per-run affinity, 64 concurrent runs, a worker process killed mid-run and
resumed from Postgres, and, last, a replica killed mid-load; then nothing is left running."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import psutil
import pytest

from r3graph import R3Context, build_r3_graph
from r3graph.serving import chat_model_for_server
from r3graph.serving.cluster import VLLMCluster
from tests.conftest import release_session_vllm
from tests.helpers import EXAMPLE_IMAGE, REPO

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.cluster]
INPUTS: dict[str, Any] = {"instruction": "Caption the image.", "images": [str(EXAMPLE_IMAGE)]}
CONTEXT = R3Context(max_rounds=1, call_timeout_s=60, run_timeout_s=240)


def bench_module(name: str) -> ModuleType:
    """bench/<name>.py as a module: the tests check the same scenario code the benchmark reports."""
    sys.path.insert(0, str(REPO / "bench"))  # cluster_load imports its sibling modules
    spec = importlib.util.spec_from_file_location(f"r3graph_bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cluster(model_dir: str) -> Iterator[VLLMCluster]:
    release_session_vllm()  # two replicas at most on this machine
    with VLLMCluster(model_dir, replicas=2, startup_timeout=600) as running:
        yield running


def finished_requests(server_url: str) -> float:
    """vLLM's own count of finished requests on one replica (Prometheus /metrics)."""
    text = httpx.get(f"{server_url}/metrics", timeout=10, trust_env=False).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:request_success_total"))


def graph_for(cluster: VLLMCluster) -> Any:
    return build_r3_graph(chat_model_for_server(cluster.url), pack="scenes").compile()


async def test_a_run_through_the_router_stays_on_one_replica(cluster: VLLMCluster) -> None:
    graph = graph_for(cluster)  # chat_model_for_server(router URL): unchanged client
    for _ in range(3):
        before = [finished_requests(s.url) for s in cluster.servers]
        result = await graph.ainvoke(INPUTS, context=CONTEXT)
        after = [finished_requests(s.url) for s in cluster.servers]
        served = sorted(a - b for a, b in zip(after, before, strict=True))
        assert result["output"] and served == [0, result["usage"].calls], served


async def test_64_concurrent_runs_over_two_replicas_all_complete(cluster: VLLMCluster) -> None:
    graph = graph_for(cluster)
    before = [finished_requests(s.url) for s in cluster.servers]
    results = await asyncio.gather(*(graph.ainvoke({**INPUTS, "instruction": f"Caption the image ({i})."},
                                                   context=CONTEXT) for i in range(64)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert all(isinstance(r, dict) and r["output"] for r in results)
    served = [finished_requests(s.url) - b for s, b in zip(cluster.servers, before, strict=True)]
    assert all(n > 0 for n in served) and sum(served) == sum(r["usage"].calls for r in results)  # type: ignore[index]


def test_a_killed_worker_process_resumes_from_postgres_without_repeating_stages(cluster: VLLMCluster) -> None:
    load = bench_module("cluster_load")
    seen = load.worker_kill(cluster, argparse.Namespace(worker_runs=3, kill_at_calls=5))
    assert seen["completed"] == 3 and seen["errors"] == 0
    assert seen["calls_worker_1"].get("reason") == 3  # every run had started when worker 1 was killed
    assert "(finished)" not in seen["next_at_resume"]  # ...and none had finished: all were mid-run
    # Worker 2 called only the stage each run was in (its call was lost with worker 1) and later ones:
    assert seen["finished_stages_called_again"] == 0
    assert sum(seen["calls_worker_2"].values()) > 0


async def test_a_replica_killed_mid_load_ends_every_run_with_a_result_or_typed_error(cluster: VLLMCluster) -> None:
    """Last: it leaves one replica. Every run ends (none hangs), with a result or an R3Error that keeps
    the best draft when there was one; runs started after the kill all complete on the live replica."""
    load = bench_module("cluster_load")
    victim = cluster.servers[1]
    group = victim.pid
    seen = await load.replica_kill(cluster, argparse.Namespace(runs=16, kill_after_s=3.0), CONTEXT)
    assert seen["runs"] == 16 and seen["hung"] == 0 and seen["untyped"] == 0
    assert seen["completed"] + seen["failed"] == 16
    assert seen["after_kill"]["completed"] == seen["after_kill"]["runs"]
    # Requests cut by the kill were retried, by the router (its counter) or by the graph (a failed attempt):
    router_retries = sum(v for k, v in seen["router"].items() if k.startswith("vllm_router_retries_total"))
    assert seen["victim_running_at_kill"] == 0 or router_retries + seen["retried"] > 0
    assert group is not None and _left_in(group) == []
    groups = cluster.pids()  # the live replica's and the router's process groups
    cluster.stop()
    assert [p for g in groups for p in _left_in(g)] == [], "orphans after stop()"


def _left_in(pgid: int, wait_s: float = 10.0) -> list[str]:
    """Live (not zombie) processes of a process group, after giving a SIGKILL time to land."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) == pgid and proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                    left.append(f"{proc.pid} {proc.status()} {' '.join(proc.cmdline())[:80]}")
            except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)

