"""vllm-omni's OpenAI-style image API on 127.0.0.1, in front of any image maker (a backend).

The HTTP side and the request rules live here, once; what makes the pixels is an
:class:`ImageMaker`: the scene-world stand-in (:mod:`r3graph_scenes.paint_server`) or a learned
token-image model run by vLLM (:mod:`r3graph.serving.token_images`). The routes and answers are the
ones vllm-omni serves and :class:`r3graph.serving.image_client.OmniImageClient` reads (checked against
vllm-omni's own request handling in tests/conformance):

- ``POST /v1/images/generations``: JSON ``{prompt, model?, n?, size?, seed?, response_format?}``;
- ``POST /v1/images/edits``: multipart ``image`` file(s) + ``prompt`` and the same fields;
- ``POST /v1/chat/completions`` with ``modalities: ["image"]``: the user's text parts are the prompt, a
  ``data:image`` URL makes it an edit; the image comes back as an ``image_url`` content part;
- ``GET /v1/models`` and ``GET /health``.

Every error is ``{"error": {"message", "type", "code"}}`` with an HTTP status (400 for a request to
change, 404 for no route, 413 for a body over the limit, 500 for a fault of the server).
Fields the maker does not use (``num_inference_steps``, ``guidance_scale``, ...) are accepted and
passed on in ``fields``; it ignores what it has no use for, as vllm-omni's stages do.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol, Self

from PIL import Image

from r3graph.serving.loopback import LoopbackHTTPServer

MAX_BODY = 8 * 1024 * 1024
MAX_N = 4
_ROUTES = ("/v1/images/generations", "/v1/images/edits", "/v1/chat/completions")


class ApiError(Exception):
    """An OpenAI-style error reply: ``{"error": {"message", "type", "code"}}`` with ``status``."""

    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass(frozen=True)
class Made:
    """What a maker returns for one request: PNGs, and optionally what the model read of the prompt
    (the OpenAI ``revised_prompt``) and token usage (``{input_tokens, output_tokens, total_tokens}``)."""

    images: list[bytes]
    revised_prompt: str | None = None
    usage: Mapping[str, int] | None = None


@dataclass(frozen=True)
class SizeRule:
    """The sizes a maker accepts: each side in ``[low, high]``, square only or not; ``default`` a side."""

    default: int = 256
    low: int = 16
    high: int = 2048
    square_only: bool = True

    def parse(self, value: Any) -> tuple[int, int]:
        if value in (None, "", "auto"):
            return self.default, self.default
        try:
            width, height = (int(v) for v in str(value).lower().split("x"))
        except ValueError:
            raise ApiError(400, f"size must look like '256x256', got {value!r}") from None
        if self.square_only and width != height:
            raise ApiError(400, f"this server makes square images only; got size {value!r}")
        if not (self.low <= width <= self.high and self.low <= height <= self.high):
            raise ApiError(400, f"size must be between {self.low} and {self.high} pixels a side, got {value!r}")
        return width, height


class ImageMaker(Protocol):
    """The backend of :class:`ImageApiServer`. Called from HTTP handler threads (several at once);
    raise :class:`ApiError` for a request the maker cannot serve (a 400 with its own ``code``)."""

    model_id: str
    notice: str | None  # shown in /v1/models (e.g. "stand-in, not a model"); None for a real model
    sizes: SizeRule

    def generate(self, prompt: str, *, n: int, size: tuple[int, int], seed: int | None,
                 fields: Mapping[str, Any]) -> Made: ...

    def edit(self, images: list[bytes], prompt: str, *, n: int, size: tuple[int, int] | None, seed: int | None,
             fields: Mapping[str, Any]) -> Made:
        """``size`` None: keep the (first) input image's size, as vllm-omni's ``size: "auto"``."""
        ...


def _seed(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"seed must be an integer, got {value!r}") from None


def _prompt(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "'prompt' is required: a description of the scene (or, for edits, the instruction)")
    return value


def _n(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():  # multipart fields are text
        value = int(value)
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_N:
        raise ApiError(400, f"n must be an integer from 1 to {MAX_N}, got {value!r}")
    return value


def _check_format(value: Any) -> None:
    if value not in (None, "", "b64_json"):
        raise ApiError(400, f"response_format {value!r} is not supported; this server answers with b64_json only")


def chat_parts(body: dict[str, Any]) -> tuple[str, list[bytes]]:
    """The prompt and input images of a chat request, read as vllm-omni reads them: the user's
    messages only, text parts joined by a space, images only as ``data:image`` URLs."""
    texts: list[str] = []
    images: list[bytes] = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        for part in [content] if isinstance(content, str) else content or []:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("type") == "image_url":
                url = str((part.get("image_url") or {}).get("url", ""))
                if url.startswith("data:image") and "," in url:
                    images.append(base64.b64decode(url.split(",", 1)[1]))
    return " ".join(texts).strip(), images


def multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, list[bytes]]]:
    """(text fields, file fields) of a multipart/form-data body, parsed with the stdlib email parser.
    A file field may repeat (several input images), so each maps to a list."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(400, "images/edits takes multipart/form-data (fields 'image' and 'prompt')")
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ApiError(400, "could not read the multipart/form-data body")
    fields: dict[str, str] = {}
    files: dict[str, list[bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        if part.get_filename() is not None:
            files.setdefault(name, []).append(payload)
        else:
            fields[name] = payload.decode("utf-8", "replace")
    return fields, files


def error_body(status: int, message: str, code: str) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "code": code}}


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) of an input image; an unreadable one is the client's mistake (400)."""
    try:
        with Image.open(io.BytesIO(png)) as img:
            return int(img.size[0]), int(img.size[1])
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ApiError(400, f"the input image is not readable ({type(exc).__name__})", "unreadable_image") from None


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it (tests read headers such as ``traceparent``)."""

    method: str
    path: str
    headers: dict[str, str]
    status: int


class ImageApiServer(LoopbackHTTPServer):
    """vllm-omni's image API for ``maker`` on 127.0.0.1 (see the module docstring); ``with`` starts it.

    ``counts``: "generations", "edits", "models", "errors" (and whatever the maker counts with
    :meth:`count`); ``requests``: every request with its status. ``delay_s`` holds each answer back
    (timeout tests); ``stop()`` releases held answers at once and drops them.
    """

    thread_name = "image-api"

    def __init__(self, maker: ImageMaker, *, host: str = "127.0.0.1", port: int = 0, delay_s: float = 0.0,
                 log_requests: bool = False) -> None:
        if host != "127.0.0.1":
            raise ValueError(f"{type(self).__name__} binds 127.0.0.1 only (a loopback service); got host {host!r}")
        super().__init__(port)
        self.maker, self.host, self.delay_s, self.log_requests = maker, host, delay_s, log_requests
        self.counts: Counter[str] = Counter()
        self.requests: list[Recorded] = []

    def count(self, key: str, by: int = 1) -> None:
        with self._lock:
            self.counts[key] += by

    def _check_model(self, value: Any) -> None:
        """vllm-omni answers a request naming another model with this 400 (its exact words)."""
        served = self.maker.model_id
        if value not in (None, "", served):
            raise ApiError(400, f"Model mismatch: request specifies '{value}' but server is running '{served}'.")

    # -- what the endpoints do ------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        self.count("models")
        entry: dict[str, Any] = {"id": self.maker.model_id, "object": "model", "owned_by": "r3graph", "created": 0}
        reply: dict[str, Any] = {"object": "list", "data": [entry]}
        if self.maker.notice:
            entry["notice"] = reply["notice"] = self.maker.notice
        return reply

    def generate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        prompt, size = _prompt(body.get("prompt")), self.maker.sizes.parse(body.get("size"))
        seed = _seed(body.get("seed"))
        _check_format(body.get("response_format"))
        self._check_model(body.get("model"))
        n = _n(body.get("n", 1))
        made = self.maker.generate(prompt, n=n, size=size, seed=seed, fields=body)
        self.count("generations")
        return _reply(made)

    def edit(self, fields: Mapping[str, str], files: Mapping[str, list[bytes]]) -> dict[str, Any]:
        instruction, seed = _prompt(fields.get("prompt")), _seed(fields.get("seed"))
        _check_format(fields.get("response_format"))
        self._check_model(fields.get("model"))
        images = [*files.get("image", []), *files.get("image[]", [])]
        if not images or not images[0]:
            raise ApiError(400, "'image' is required: the PNG to edit, as a file field")
        size = self.maker.sizes.parse(fields["size"]) if fields.get("size") not in (None, "", "auto") else None
        made = self.maker.edit(images, instruction, n=_n(fields.get("n")), size=size, seed=seed, fields=fields)
        self.count("edits")
        return _reply(made)

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """``/v1/chat/completions`` with ``modalities: ["image"]``, as vllm-omni serves BAGEL: generates,
        or edits the first input image; the image comes back as an ``image_url`` content part."""
        if "image" not in (body.get("modalities") or []):
            raise ApiError(400, "Unsupported output modalities text for this model. Supported modalities: image")
        self._check_model(body.get("model"))
        prompt, images = chat_parts(body)
        # A chat body's own fields (its response_format is about text) are not the image request's.
        fields = {k: v for k, v in body.items() if k not in ("messages", "modalities", "n", "response_format")}
        fields["prompt"] = prompt
        if images:
            reply = self.edit({k: str(v) for k, v in fields.items() if v is not None}, {"image": images[:1]})
        else:
            reply = self.generate(fields)
        url = "data:image/png;base64," + reply["data"][0]["b64_json"]
        message = {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": url}}]}
        out = {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": reply["created"],
               "model": self.maker.model_id, "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        if "usage" in reply:
            u = reply["usage"]
            out["usage"] = {"prompt_tokens": u["input_tokens"], "completion_tokens": u["output_tokens"],
                            "total_tokens": u["total_tokens"]}
        return out

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> Self:
        return self._serve(_handler(self), self.thread_name, join_handlers=False)


def _reply(made: Made) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "created": int(time.time()),
        "data": [{"b64_json": base64.b64encode(png).decode("ascii"), "revised_prompt": made.revised_prompt}
                 for png in made.images],
    }
    if made.usage is not None:
        reply["usage"] = dict(made.usage)
    return reply


def _handler(server: ImageApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # One request per connection: no keep-alive connection pins a handler thread at stop().
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            if server.log_requests:
                super().log_message(format, *args)

        def do_GET(self) -> None:
            routes: dict[str, Callable[[], dict[str, Any]]] = {"/v1/models": server.models, "/health": dict}
            self._handle(lambda: routes[r]() if (r := self._route()) in routes else None)

        def do_POST(self) -> None:
            self._handle(self._post)

        def _route(self) -> str:
            return self.path.split("?", 1)[0].rstrip("/")

        def _post(self) -> dict[str, Any] | None:
            route = self._route()
            if route not in _ROUTES:
                return None
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ApiError(413, f"request body of {length} bytes is over the {MAX_BODY}-byte limit",
                               "body_too_large")
            body = self.rfile.read(length)
            if route.endswith("/edits"):
                return server.edit(*multipart(self.headers.get("Content-Type", ""), body))
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                raise ApiError(400, "this endpoint takes a JSON body") from None
            if not isinstance(payload, dict):
                raise ApiError(400, "images/generations takes a JSON object")
            return server.chat(payload) if route.endswith("/completions") else server.generate(payload)

        def _handle(self, work: Callable[[], dict[str, Any] | None]) -> None:
            status, payload = 200, None
            try:
                payload = work()
                if payload is None:
                    status, payload = 404, error_body(404, f"no route {self.command} {self.path}", "not_found")
            except ApiError as exc:
                status, payload = exc.status, error_body(exc.status, exc.message, exc.code)
            except Exception as exc:  # a bug here must still answer, as a 500 the client can read
                status, payload = 500, error_body(500, f"{type(exc).__name__}: {exc}", "internal_error")
            with server._lock:
                server.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), status))
                server.counts["errors"] += status != 200
            if server.delay_s and server._stopping.wait(server.delay_s):
                return  # stopping: drop the reply
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout passed): nothing to tell it

    return Handler
