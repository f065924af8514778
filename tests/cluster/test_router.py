"""vllm-router in front of OpenAI-compatible replicas, with no vLLM process: the real router binary over
two scripted fake servers (tests.reliability.fake_openai). What r3graph relies on: every model call of
a run carries the run's id (X-Session-ID), consistent_hash keeps a run on one replica, round_robin
does not, and a dead replica's runs reach the live one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from r3graph import R3Context, build_r3_graph
from r3graph.calls import SESSION_HEADER
from r3graph.cli import build_parser
from r3graph.serving import chat_model_for_server
from r3graph.serving.cluster import VLLMCluster, VLLMRouter
from tests.helpers import EXAMPLE_IMAGE
from tests.reliability.fake_openai import FakeOpenAI

INPUTS: dict[str, Any] = {"instruction": "Caption the image.", "images": [str(EXAMPLE_IMAGE)]}
CONTEXT = R3Context(max_rounds=1, call_timeout_s=10, run_timeout_s=30)
KEY = SESSION_HEADER.lower()


@pytest.fixture
def replicas() -> Iterator[list[FakeOpenAI]]:
    fakes = [FakeOpenAI().start(), FakeOpenAI().start()]
    yield fakes
    for fake in fakes:
        fake.stop()


def router_over(fakes: list[FakeOpenAI], policy: str) -> VLLMRouter:
    return VLLMRouter([f.url.removesuffix("/v1") for f in fakes], policy=policy)


class FailedCalls(BaseCallbackHandler):
    def __init__(self) -> None:
        self.failed = 0

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.failed += 1


def sessions_by_replica(fakes: list[FakeOpenAI]) -> dict[str, set[int]]:
    where: dict[str, set[int]] = defaultdict(set)
    for i, fake in enumerate(fakes):
        for request in fake.chat_requests:
            where[request.headers.get(KEY, "")].add(i)
    return where


async def test_consistent_hash_keeps_every_call_of_a_run_on_one_replica(replicas: list[FakeOpenAI]) -> None:
    with router_over(replicas, "consistent_hash") as router:
        graph = build_r3_graph(chat_model_for_server(router.url), pack="scenes").compile()
        for _ in range(12):
            result = await graph.ainvoke(INPUTS, context=CONTEXT)
            assert result["usage"].calls >= 4  # reason, questions, answers, refine
    where = sessions_by_replica(replicas)
    assert "" not in where, "a model call went out without the run's id"
    assert len(where) == 12 and all(len(replicas_hit) == 1 for replicas_hit in where.values())
    assert {i for hit in where.values() for i in hit} == {0, 1}  # 12 runs: both replicas used (p of not: 2^-11)


async def test_round_robin_spreads_a_runs_calls_over_the_replicas(replicas: list[FakeOpenAI]) -> None:
    with router_over(replicas, "round_robin") as router:
        graph = build_r3_graph(chat_model_for_server(router.url), pack="scenes").compile()
        await graph.ainvoke(INPUTS, context=CONTEXT)
    (hit,) = sessions_by_replica(replicas).values()
    assert hit == {0, 1}


async def test_runs_keyed_to_a_dead_replica_are_served_by_the_live_one(replicas: list[FakeOpenAI]) -> None:
    """The router's retries and circuit breaker move a dead replica's sessions to the live one before
    the client sees an error (a replica dying mid-request is the vLLM cluster test's case)."""
    with router_over(replicas, "consistent_hash") as router:
        graph = build_r3_graph(chat_model_for_server(router.url), pack="scenes").compile()
        replicas[1].stop()  # dead: connection refused
        failed = FailedCalls()
        results = [await graph.ainvoke(INPUTS, {"callbacks": [failed]}, context=CONTEXT) for _ in range(8)]
    assert all(r["output"] for r in results) and failed.failed == 0
    on_live = sessions_by_replica(replicas[:1])
    assert len(on_live) == 8  # every run, including those whose id hashes to the dead replica (p all not: 2^-8)
    assert len(replicas[0].chat_requests) == sum(r["usage"].calls for r in results)


def test_a_cluster_is_n_loopback_servers_behind_one_router(tmp_path: Any) -> None:
    cluster = VLLMCluster("some/model", replicas=3, policy="round_robin", log_dir=tmp_path,
                          server_options={"max_model_len": 512, "extra_args": ["--max-num-seqs", "8"]})
    assert len(cluster.servers) == 3 and len({s.port for s in cluster.servers}) == 3
    command = cluster.router.command()
    workers = command[command.index("--worker-urls") + 1: command.index("--policy")]
    assert workers == [s.url for s in cluster.servers] and all(u.startswith("http://127.0.0.1:") for u in workers)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--policy") + 1] == "round_robin"
    assert command[command.index("--prometheus-port") + 1] != "29000"  # its own free port, never the shared default
    assert all(s.command()[-2:] == ["--max-num-seqs", "8"] and "512" in s.command() for s in cluster.servers)
    assert cluster.pids() == []  # nothing started yet
    with pytest.raises(ValueError, match="replicas must be at least 1"):
        VLLMCluster("some/model", replicas=0)
    with pytest.raises(ValueError, match="unknown router policy 'sticky'"):
        VLLMCluster("some/model", policy="sticky")


def test_serve_takes_replicas_and_a_router_policy() -> None:
    args = build_parser().parse_args(["serve", "--replicas", "2", "--policy", "round_robin", "--port", "9000"])
    assert (args.replicas, args.policy, args.port) == (2, "round_robin", 9000)
    assert build_parser().parse_args(["serve"]).replicas == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--replicas", "2", "--policy", "nearest"])


def test_only_clients_that_send_headers_get_the_session_key() -> None:
    from r3graph.backends import make_backend
    from r3graph.calls import session_kwargs

    openai = chat_model_for_server("http://127.0.0.1:9", model="m")
    assert session_kwargs(openai, "run-1") == {"extra_headers": {SESSION_HEADER: "run-1"}}
    assert session_kwargs(openai, None) == {}
    assert session_kwargs(make_backend("scripted").model, "run-1") == {}  # no such kwarg: nothing sent
