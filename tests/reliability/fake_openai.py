"""A scripted OpenAI-compatible chat server for fault tests (127.0.0.1 only, one thread).

``FakeOpenAI(script)`` serves ``GET /health``, ``GET /v1/models`` and ``POST /v1/chat/completions``. Every request is
recorded (path, JSON body, arrival time); what each chat request gets back is a :class:`Reply` taken
from ``script`` (a list used in order, then the default; or a function of the request index and
body): a status code, a delay, a body cut off mid-way, a given content and finish_reason, or no
answer at all. Replies without a content are written by ``responder`` (by default a plausible
answer for the "scenes" prompt pack, chosen from the stage prompt).

HTTP/1.0 (``Connection: close`` after every reply) keeps the shutdown simple: no keep-alive
connection pins a handler thread, so ``stop()`` joins every thread it started.

:class:`SilentListener` is a TCP port that accepts connections and never answers.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from r3graph.serving.loopback import LoopbackHTTPServer


@dataclass(frozen=True)
class Reply:
    content: str | None = None  # None: the server's responder writes it from the request
    status: int = 200
    finish_reason: str = "stop"
    delay_s: float = 0.0
    cut_body: bool = False  # announce the full Content-Length, send half of it, close
    hang: bool = False  # read the request, never answer (until the server stops)
    error: str | None = None  # the error message of a non-200 reply (default: "scripted <status>")


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    t: float
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names


def last_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def scenes_reply(body: dict[str, Any]) -> str:
    """A well-formed answer per stage of the "scenes" pack (reason, questions, answer, judge, refine)."""
    text = last_user_text(body)
    if "questions that check the draft" in text:
        return "Is there a red square?\nIs it on the left?"
    if text.startswith("Question:"):
        return "yes"
    if "Judge the draft" in text:
        return json.dumps({"edit": "no further edit needed"})
    if "Write the corrected caption" in text:
        return "a red square on the left"
    return "a red square on the left"


Script = Sequence[Reply] | Callable[[int, dict[str, Any]], Reply]


@dataclass
class FakeOpenAI(LoopbackHTTPServer):
    script: Script = ()
    default: Reply = field(default_factory=Reply)
    responder: Callable[[dict[str, Any]], str] = scenes_reply
    model: str = "fake"
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        LoopbackHTTPServer.__init__(self)

    # -- what the tests read ------------------------------------------------------------------
    @property
    def chat_requests(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if self.path == "/health":  # as vLLM's server: what vllm-router checks before routing to it
                    self._json(200, {})
                elif self.path.rstrip("/").endswith("/models"):
                    fake._record(self.path, {})
                    self._json(200, {"object": "list", "data": [{"id": fake.model, "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._json(404, {"error": {"message": "not found"}})
                    return
                index = fake._record(self.path, body, {k.lower(): v for k, v in self.headers.items()})
                reply = fake._reply_for(index, body)
                if reply.hang:
                    fake._stopping.wait()
                    return
                if reply.delay_s and fake._stopping.wait(reply.delay_s):
                    return
                if reply.status != 200:
                    self._json(reply.status, {"error": {"message": reply.error or f"scripted {reply.status}",
                                                        "type": "fake", "code": reply.status}})
                    return
                content = reply.content if reply.content is not None else fake.responder(body)
                if body.get("stream"):
                    self._stream(content, reply, body)
                else:
                    self._json(200, fake._completion(content, reply.finish_reason), cut=reply.cut_body)

            def _json(self, status: int, payload: dict[str, Any], cut: bool = False) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if cut else data)
                self.wfile.flush()

            def _stream(self, content: str, reply: Reply, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": fake.model}
                chunks = [
                    {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                                          "finish_reason": None}]},
                    {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}]},
                    {**base, "choices": [], "usage": fake._usage(content)},
                ]
                for i, chunk in enumerate(chunks):
                    if reply.cut_body and i == 1:
                        return  # connection closes before the end of the stream
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        return self._serve(Handler, "fake-openai", join_handlers=True)  # stop() joins the handler threads

    # -- internals ----------------------------------------------------------------------------
    def _record(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> int:
        with self._lock:
            self.requests.append(Recorded(path, body, time.monotonic(), headers or {}))
            return sum(1 for r in self.requests if r.path.endswith("/chat/completions")) - 1

    def _reply_for(self, index: int, body: dict[str, Any]) -> Reply:
        if callable(self.script):
            return self.script(index, body)
        return self.script[index] if index < len(self.script) else self.default

    def _usage(self, content: str) -> dict[str, int]:
        out = max(1, len(content.split()))
        return {"prompt_tokens": 20, "completion_tokens": out, "total_tokens": 20 + out}

    def _completion(self, content: str, finish_reason: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_reason}],
            "usage": self._usage(content),
        }


class SilentListener:
    """A TCP port on 127.0.0.1 whose connections complete (the kernel's backlog) and are never answered."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self._sock.close()  # pending connections are reset

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
