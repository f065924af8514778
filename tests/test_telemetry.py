"""OTLP export configured from the standard environment, and traceparent on requests to vLLM."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from r3graph import R3Context, build_r3_graph
from r3graph.serving.propagation import ASYNC_EVENT_HOOKS, EVENT_HOOKS, traced_http_clients
from r3graph.telemetry import configure_tracing, otlp_protocol, otlp_span_exporter
from r3graph_scenes.assets import EXAMPLE_PNG
from r3graph_scenes.plugin import SCENES_VLM_DIR
from r3graph_scenes.scripted import ScriptedSceneModel


def test_the_protocol_comes_from_the_environment_and_http_is_the_default() -> None:
    assert otlp_protocol({}) == "http/protobuf"
    assert otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == "grpc"
    assert otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                          "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}) == "http/protobuf"
    with pytest.raises(ValueError, match="http/json"):
        otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


def test_exporters_read_endpoint_and_protocol_without_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:14318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    exporter = otlp_span_exporter()
    assert isinstance(exporter, HttpExporter)
    assert exporter._endpoint == "http://127.0.0.1:14318/v1/traces"  # the signal path is appended
    exporter.shutdown()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:14317")
    grpc_exporter = otlp_span_exporter()
    assert isinstance(grpc_exporter, GrpcExporter)
    assert grpc_exporter._endpoint == "127.0.0.1:14317"
    grpc_exporter.shutdown()


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Collector.received
    server.shutdown()
    server.server_close()


async def test_a_run_reaches_an_otlp_http_listener(
    monkeypatch: pytest.MonkeyPatch, collector: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    endpoint, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    shutdown = configure_tracing("otlp")  # conftest installed a provider: ours is added to it
    graph = build_r3_graph(ScriptedSceneModel(), pack="scenes").compile()
    await graph.ainvoke({"instruction": "Describe the image.", "images": [EXAMPLE_PNG]},
                        context=R3Context(max_rounds=1))
    shutdown()  # flushes the batch
    assert received, "the OTLP exporter sent nothing"
    names = set()
    for path, content_type, body in received:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest.FromString(body)
        names |= {span.name for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans}
    assert {"invoke_workflow r3", "r3.reason", "r3.reflect", "r3.refine",
            "chat scripted-scenes-oracle"} <= names


def test_tracing_none_and_console_need_no_collector(capsys: pytest.CaptureFixture[str]) -> None:
    configure_tracing("none")()  # a no-op
    shutdown = configure_tracing("console")
    with trace.get_tracer("test").start_as_current_span("hello-console"):
        pass
    shutdown()
    assert '"name": "hello-console"' in capsys.readouterr().err


def _traceparent_of_current_span() -> str:
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier["traceparent"]


def _echo_headers(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=dict(request.headers))


def test_the_sync_hook_sends_the_current_spans_traceparent() -> None:
    with httpx.Client(transport=httpx.MockTransport(_echo_headers), event_hooks=EVENT_HOOKS) as client:
        assert "traceparent" not in client.get("http://vllm.invalid/v1/models").json()  # no span, no header
        with trace.get_tracer("test").start_as_current_span("chat scenes-vlm") as span:
            headers = client.get("http://vllm.invalid/v1/models").json()
            expected = _traceparent_of_current_span()
    ctx = span.get_span_context()
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert headers["traceparent"] == expected
    assert (version, trace_id, span_id) == ("00", f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert int(flags, 16) == int(ctx.trace_flags) and int(flags, 16) & 1  # sampled (bit 1 may be "random")


async def test_the_async_hook_and_the_ready_made_clients() -> None:
    sync_client, async_client = traced_http_clients("http://127.0.0.1:8000")
    assert async_client._event_hooks["request"] == ASYNC_EVENT_HOOKS["request"]
    assert sync_client._trust_env is False  # loopback: no proxies
    sync_client.close()
    await async_client.aclose()
    async with httpx.AsyncClient(transport=httpx.MockTransport(_echo_headers),
                                 event_hooks=ASYNC_EVENT_HOOKS) as client:
        with trace.get_tracer("test").start_as_current_span("chat scenes-vlm") as span:
            headers = (await client.post("http://vllm.invalid/v1/chat/completions",
                                         headers={"x-keep": "1"})).json()
    assert headers["traceparent"].split("-")[2] == f"{span.get_span_context().span_id:016x}"
    assert headers["x-keep"] == "1"


class _FakeVLLM(BaseHTTPRequestHandler):
    """Just enough of vLLM's OpenAI API for one chat call; records each request's headers."""

    headers_seen: ClassVar[list[dict[str, str]]] = []

    def _json(self, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        # Like vLLM, the model's root is the directory it loaded; the shipped one declares its pack.
        self._json({"object": "list", "data": [{"id": "scenes-vlm", "object": "model",
                                                "root": str(SCENES_VLM_DIR)}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        self._json({"id": "c1", "object": "chat.completion", "created": 0, "model": "scenes-vlm",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "a small red star ."}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})

    def log_message(self, *args: object) -> None:
        pass


async def test_requests_to_a_vllm_server_carry_the_chat_spans_context(spans: InMemorySpanExporter) -> None:
    from r3graph.backends import make_backend

    _FakeVLLM.headers_seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeVLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = make_backend("server", base_url=f"http://127.0.0.1:{server.server_address[1]}")
        assert backend.model_name == "scenes-vlm" and backend.pack == "scenes"
        graph = build_r3_graph(backend.model, pack=backend.pack).compile()
        result = await graph.ainvoke({"instruction": "Describe the image.", "images": [EXAMPLE_PNG]},
                                     context=R3Context(max_rounds=0))
    finally:
        server.shutdown()
        server.server_close()
    assert result["output"] == "a small red star ."
    (headers,) = _FakeVLLM.headers_seen
    _, trace_id, parent_id, _ = headers["traceparent"].split("-")
    (chat,) = [s for s in spans.get_finished_spans() if s.name == "chat scenes-vlm"]
    (run,) = [s for s in spans.get_finished_spans() if s.name == "invoke_workflow r3"]
    # The server's span would be a child of r3graph's chat span, in the run's trace.
    assert parent_id == f"{chat.context.span_id:016x}"
    assert trace_id == f"{chat.context.trace_id:032x}" == f"{run.context.trace_id:032x}"
