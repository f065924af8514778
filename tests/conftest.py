"""Test-wide set-up: an in-memory OpenTelemetry exporter (the SDK belongs to tests, not the library), and
one vLLM engine and one server per session for every test directory.

The machine runs one vLLM instance at a time (CPU and memory), so engine tests run before server tests
(see ``pytest_collection_modifyitems``) and the server fixture stops the engine first. With
``scenes/r3graph_scenes/models/scenes-vlm`` absent, a tiny random-weight Idefics3 is built.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from r3graph.serving.env import apply_vllm_env_defaults, project_cache_dir
from tests.helpers import REPO
from tests.scenes_checkout import ensure_scenes_plugin

SCENES_PLUGIN_FOUND_BY = ensure_scenes_plugin()  # before anything asks the core for a default model
from r3graph_scenes.plugin import SCENES_VLM_DIR  # noqa: E402  (found by the line above)

apply_vllm_env_defaults()
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
# Tests that change what is running go last in their group.
_LAST = {"test_shutdown_leaves_no_child_process", "test_stop_leaves_nothing_running"}
# Server tests that stop the session server and start (and kill) their own: after every other server test.
_AFTER_SERVER = {"test_a_server_killed_mid_run_fails_typed_with_the_draft"}
# Engine tests of another model: after the session engine's users, so it is stopped (for their own) once.
_OTHER_MODEL_ENGINE = {"test_token_image_server.py"}

_EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
trace.set_tracer_provider(_provider)


def pytest_report_header(config: pytest.Config) -> str:
    return f"r3graph plugins: scenes found by {SCENES_PLUGIN_FOUND_BY}"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def key(item: pytest.Item) -> tuple[int, int]:
        name = getattr(item, "originalname", item.name)
        group = 1 if item.get_closest_marker("engine") else 2 if item.get_closest_marker("server") else 0
        if item.get_closest_marker("cluster"):
            group = 4  # after every single-server test: the cluster stops the session server first
        # Another model's engine tests come after _LAST ones: those check the session engine's own
        # shutdown, which needs it still running (the other model's fixture stops it first).
        tier = 3 if item.path.name in _OTHER_MODEL_ENGINE else 2 if name in _LAST else 0
        return group + int(name in _AFTER_SERVER), tier

    items.sort(key=key)


@pytest.fixture(scope="session")
def model_dir() -> str:
    if (SCENES_VLM_DIR / "config.json").is_file():
        return str(SCENES_VLM_DIR)
    cache = project_cache_dir() or Path.home() / ".cache" / "r3graph"
    tiny = cache / "tiny-idefics3"
    if not (tiny / "config.json").is_file():
        subprocess.run([sys.executable, str(REPO / "scripts" / "build_tiny_idefics3.py"), str(tiny)],
                       check=True)
    return str(tiny)


@pytest.fixture(scope="session")
def engine(model_dir: str) -> Iterator[object]:
    from r3graph.serving import ChatVLLMEngine, shutdown_engines

    model = ChatVLLMEngine(model=model_dir, max_tokens=24).start()
    yield model
    shutdown_engines()


@pytest.fixture(scope="session")
def server(model_dir: str) -> Iterator[object]:
    from r3graph.serving import VLLMServer, shutdown_engines

    shutdown_engines()  # one vLLM instance at a time on this machine
    srv = VLLMServer(model_dir, startup_timeout=400).start()
    _SESSION_SERVERS.append(srv)
    yield srv
    srv.stop()


_SESSION_SERVERS: list[object] = []


def release_session_vllm() -> None:
    """Stop the session engine and server if they run: the cluster tests need the room for two replicas."""
    from r3graph.serving import shutdown_engines

    shutdown_engines()
    for srv in _SESSION_SERVERS:
        srv.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server for the session: initdb into a temporary folder, a Unix socket in
    that folder only (no TCP), stopped and deleted at the end (r3graph.postgres.LocalPostgres)."""
    from r3graph.postgres import LocalPostgres

    with LocalPostgres() as pg:
        yield pg.conn_string
