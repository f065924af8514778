"""Several vLLM servers behind vLLM's own router (``vllm-router``), all on 127.0.0.1.

``with VLLMCluster(model_dir, replicas=2) as cluster: chat_model_for_server(cluster.base_url)``: the
router speaks the same OpenAI API as one server, so clients do not change.

Affinity: every stage of an R3 run sends the same prefix (system text and the images), so a run's
requests should reach the replica whose prefix cache already holds it. r3graph sends the run's id in
the ``X-Session-ID`` header (:data:`r3graph.calls.SESSION_HEADER`); the router's ``consistent_hash``
policy (the default here) hashes it to one replica, and falls back to a live one when that replica
dies. ``cache_aware`` (the router's prefix tree) needs no header; ``round_robin`` spreads a run's
stages over every replica (the baseline in ``bench/load.py --scenario affinity``).

Failures: requests cut by a dead replica are retried by the router itself; after 3 failures its
circuit breaker takes the replica out of the ring, so the retries land on a live one (measured:
bench/results/cluster.md, 31 cut requests, 31 router retries, no error reached the graph). If the
router gives up it answers 5xx, which is transient for the graph's RetryPolicy. The flags below make
this fast (the router's defaults wait for 10 failures and check health once a minute).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Self

from r3graph.serving.process import LoopbackProcess, Managed, free_port
from r3graph.serving.server import VLLMServer, VLLMServerError

ROUTER_POLICIES = ("consistent_hash", "round_robin", "cache_aware", "sticky_least_loaded", "power_of_two", "random")

# How fast the router gives up on a dead replica (see the module docstring); tuned for R3's RetryPolicy,
# whose three attempts span ~1.5 s.
ROUTER_FAILOVER_FLAGS = (
    "--cb-failure-threshold", "3",          # open the circuit after 3 failed tries (one client request)
    "--health-check-interval-secs", "1",
    "--health-failure-threshold", "1",
    "--worker-startup-check-interval", "1",
)


class RouterError(VLLMServerError):
    """The router failed to start or died; the message ends with its last log lines."""


def router_executable() -> list[str]:
    """``vllm-router`` beside this interpreter (a venv), else on PATH, else its Python module."""
    beside = Path(sys.executable).with_name("vllm-router")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("vllm-router")
    return [found] if found else [sys.executable, "-m", "vllm_router.launch_router"]


class VLLMRouter(LoopbackProcess):
    """``vllm-router`` in front of ``worker_urls``, bound to loopback, with R3's fail-over flags."""

    label = "vllm-router"
    error_type = RouterError

    def __init__(
        self,
        worker_urls: Sequence[str],
        *,
        policy: str = "consistent_hash",
        host: str = "127.0.0.1",
        port: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 120.0,
        echo: IO[str] | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        if policy not in ROUTER_POLICIES:
            raise ValueError(f"unknown router policy {policy!r}; choose one of {', '.join(ROUTER_POLICIES)}")
        super().__init__(host=host, port=port, startup_timeout=startup_timeout, echo=echo, log_path=log_path)
        self.worker_urls = list(worker_urls)
        self.policy = policy
        self.extra_args = list(extra_args)
        # The router always serves Prometheus metrics (default port 29000): a free port per router,
        # so two clusters (or a test and a user's router) never collide.
        self.metrics_port = free_port(host)

    @property
    def metrics_url(self) -> str:
        """The router's Prometheus metrics (requests, retries, circuit-breaker outcomes per worker)."""
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        return [
            *router_executable(),
            "--host", self.host,
            "--port", str(self.port),
            "--worker-urls", *self.worker_urls,
            "--policy", self.policy,
            "--prometheus-host", self.host,
            "--prometheus-port", str(self.metrics_port),
            "--log-level", "warning",
            *ROUTER_FAILOVER_FLAGS,
            *self.extra_args,  # last wins: the user's flags override ours
        ]


class VLLMCluster(Managed):
    """``replicas`` vLLM servers (each its own process group) and a router in front of them.

    ``server_options`` go to every :class:`VLLMServer` (``max_model_len``, ``extra_args``...).
    Replicas start concurrently; :meth:`stop` stops the router first (no new requests), then every
    replica, each by its process group.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        replicas: int = 2,
        policy: str = "consistent_hash",
        host: str = "127.0.0.1",
        router_port: int | None = None,
        server_options: dict[str, Any] | None = None,
        router_args: Sequence[str] = (),
        startup_timeout: float = 600.0,
        echo: IO[str] | None = None,
        log_dir: str | Path | None = None,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        logs = Path(log_dir) if log_dir else None
        options = dict(server_options or {})
        self.servers = [
            VLLMServer(model_dir, host=host, startup_timeout=startup_timeout, echo=echo,
                       log_path=logs / f"replica-{i}.log" if logs else None, **options)
            for i in range(replicas)
        ]
        self.router = VLLMRouter([s.url for s in self.servers], policy=policy, host=host, port=router_port,
                                 extra_args=router_args, echo=echo,
                                 log_path=logs / "router.log" if logs else None)

    @property
    def url(self) -> str:
        return self.router.url

    @property
    def base_url(self) -> str:
        return self.router.base_url

    @property
    def served_model_name(self) -> str:
        return self.servers[0].served_model_name

    @property
    def policy(self) -> str:
        return self.router.policy

    def pids(self) -> list[int]:
        """Process-group leaders still held: every replica's, then the router's."""
        return [p for p in [*(s.pid for s in self.servers), self.router.pid] if p is not None]

    def start(self) -> Self:
        # Launch every replica from this thread (a replica started from a helper thread would get
        # its parent-death signal when that thread ends), then wait: they load concurrently.
        try:
            for server in self.servers:
                server.launch()
            for server in self.servers:
                server.wait_healthy()
            self.router.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.router.stop()
        for server in self.servers:
            server.stop()

    def wait(self) -> int:
        """Block until the router exits on its own (the CLI's foreground mode); its exit code."""
        return self.router.wait()
