"""A STAND-IN for an image generator, speaking vllm-omni's OpenAI-style image API. Not a model.

It paints prompts about the scene world (coloured shapes, see :mod:`r3graph.scenes.world`) with the
scene renderer (and the same through ``POST /v1/chat/completions`` with ``modalities: ["image"]``,
vllm-omni's BAGEL path): ``POST /v1/images/generations`` lays the prompt out exactly
(:func:`r3graph.scenes.painter.layout`) and, with probability ``error_rate``, makes one mistake a
generator makes (:func:`r3graph.scenes.image_edits.make_mistake`); ``POST /v1/images/edits`` applies
one edit sentence to a painting it made (the PNG carries its scene in a text chunk). So output mode
``image`` (generate, judge, edit) runs end to end on a laptop, with mistakes whose truth is known,
and the HTTP client is tested against the same wire format as a real vllm-omni server.

Loopback only (127.0.0.1). Run it by hand with::

    python -m r3graph.scenes.paint_server --port 8001 --error-rate 0.3
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from PIL import Image

from r3graph.scenes.image_edits import MISTAKE_KINDS, make_mistake
from r3graph.scenes.painter import apply_edit, decode_scene, encode_png, layout
from r3graph.serving.loopback import LoopbackHTTPServer

MODEL_ID = "r3graph-scene-painter"
NOTICE = (
    "stand-in for an image generator only: paints scene-world prompts (coloured shapes) with the scene "
    "renderer, sometimes with one deliberate mistake; it is not a model"
)
MAX_BODY = 8 * 1024 * 1024
DEFAULT_SIZE = 256
SIZE_RANGE = (16, 2048)


class ApiError(Exception):
    """An OpenAI-style error reply: ``{"error": {"message", "type", "code"}}`` with ``status``."""

    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it (tests read headers such as ``traceparent``)."""

    method: str
    path: str
    headers: dict[str, str]
    status: int


def _rng(*parts: object) -> random.Random:
    """An RNG fixed by ``parts``: same server seed + same request = same image, in any process."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _size(value: Any) -> int:
    if value in (None, ""):
        return DEFAULT_SIZE
    try:
        width, height = (int(v) for v in str(value).lower().split("x"))
    except ValueError:
        raise ApiError(400, f"size must look like '256x256', got {value!r}") from None
    if width != height:
        raise ApiError(400, f"this stand-in paints square images only; got size {value!r}")
    if not SIZE_RANGE[0] <= width <= SIZE_RANGE[1]:
        raise ApiError(400, f"size must be between {SIZE_RANGE[0]} and {SIZE_RANGE[1]} pixels a side, got {width}")
    return width


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


def _check_model(value: Any) -> None:
    """vllm-omni answers a request naming another model with this 400 (its exact words)."""
    if value not in (None, "", MODEL_ID):
        raise ApiError(400, f"Model mismatch: request specifies '{value}' but server is running '{MODEL_ID}'.")


def _chat_parts(body: dict[str, Any]) -> tuple[str, list[bytes]]:
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


def _check_format(value: Any) -> None:
    if value not in (None, "", "b64_json"):
        raise ApiError(400, f"response_format {value!r} is not supported; this server answers with b64_json only")


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """(text fields, file fields) of a multipart/form-data body, parsed with the stdlib email parser."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(400, "images/edits takes multipart/form-data (fields 'image' and 'prompt')")
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ApiError(400, "could not read the multipart/form-data body")
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        if part.get_filename() is not None:
            files[name] = payload
        else:
            fields[name] = payload.decode("utf-8", "replace")
    return fields, files


class PaintServer(LoopbackHTTPServer):
    """The stand-in image server on 127.0.0.1 (see the module docstring). Use as a context manager."""

    def __init__(
        self,
        error_rate: float = 0.3,
        kinds: tuple[str, ...] = MISTAKE_KINDS,
        seed: int = 0,
        edit_error_rate: float = 0.0,
        delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        log_requests: bool = False,
    ) -> None:
        if host != "127.0.0.1":
            raise ValueError(f"PaintServer binds 127.0.0.1 only (a test stand-in, not a service); got host {host!r}")
        if not (0.0 <= error_rate <= 1.0 and 0.0 <= edit_error_rate <= 1.0):
            raise ValueError("error_rate and edit_error_rate are probabilities in [0, 1]")
        self.error_rate, self.kinds, self.seed = error_rate, tuple(kinds), seed
        self.edit_error_rate, self.delay_s, self.log_requests = edit_error_rate, delay_s, log_requests
        super().__init__(port)
        self.host = host
        self.counts: Counter[str] = Counter()  # "generations", "edits", "models", "mistakes", "ignored_edits", "errors"
        self.requests: list[Recorded] = []
        self._unseeded = random.Random(seed)  # requests without a seed draw from here, like a real sampler

    # -- what the endpoints do ------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        self._count("models")
        return {
            "object": "list",
            "data": [{"id": MODEL_ID, "object": "model", "owned_by": "r3graph", "created": 0, "notice": NOTICE}],
            "notice": NOTICE,
        }

    def generate(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt, size, seed = _prompt(body.get("prompt")), _size(body.get("size")), _seed(body.get("seed"))
        _check_format(body.get("response_format"))
        _check_model(body.get("model"))
        n = body.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 4:
            raise ApiError(400, f"n must be an integer from 1 to 4, got {n!r}")
        rng = self._request_rng("generate", prompt, seed)
        images = []
        for _ in range(n):
            try:
                scene = layout(prompt, rng)
            except ValueError as exc:
                raise ApiError(400, f"cannot paint this prompt: {exc}", "unpaintable_prompt") from None
            if (
                rng.random() < self.error_rate
                and (wrong := make_mistake(scene, rng, self.kinds, prompt=prompt)) is not None
            ):
                scene = wrong[0]
                self._count("mistakes")
            images.append(encode_png(scene, size))
        self._count("generations")
        return self._reply(images)

    def edit(self, fields: dict[str, str], files: dict[str, bytes]) -> dict[str, Any]:
        instruction, seed = _prompt(fields.get("prompt")), _seed(fields.get("seed"))
        _check_format(fields.get("response_format"))
        _check_model(fields.get("model"))
        image = files.get("image") or files.get("image[]")
        if not image:
            raise ApiError(400, "'image' is required: the PNG to edit, as a file field")
        scene = decode_scene(image)
        if scene is None:
            raise ApiError(
                400,
                "not an image this stand-in painted: it edits only PNGs from its own "
                "images/generations (they carry their scene)",
                "unknown_image",
            )
        size = _size(fields.get("size")) if fields.get("size") else _png_side(image)
        rng = self._request_rng("edit", scene.to_json(), instruction, seed)
        if rng.random() < self.edit_error_rate:
            self._count("ignored_edits")  # an editor that fails to follow the instruction
        else:
            scene = apply_edit(scene, instruction, rng)
        self._count("edits")
        return self._reply([encode_png(scene, size)])

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """``/v1/chat/completions`` with ``modalities: ["image"]``, as vllm-omni serves BAGEL: generates,
        or edits the first input image; the image comes back as an ``image_url`` content part."""
        if "image" not in (body.get("modalities") or []):
            raise ApiError(400, "Unsupported output modalities text for this model. Supported modalities: image")
        _check_model(body.get("model"))
        prompt, images = _chat_parts(body)
        fields = {"prompt": prompt, "size": body.get("size"), "seed": body.get("seed")}
        if images:
            reply = self.edit({k: str(v) for k, v in fields.items() if v is not None}, {"image": images[0]})
        else:
            reply = self.generate(fields)
        url = "data:image/png;base64," + reply["data"][0]["b64_json"]
        message = {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": url}}]}
        return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": reply["created"],
                "model": MODEL_ID, "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}

    def _request_rng(self, *parts: object) -> random.Random:
        seed = parts[-1]
        if seed is None:
            with self._lock:
                seed = f"unseeded-{self._unseeded.getrandbits(64)}"
        return _rng(self.seed, *parts[:-1], seed)

    @staticmethod
    def _reply(images: list[bytes]) -> dict[str, Any]:
        return {
            "created": int(time.time()),
            "data": [{"b64_json": base64.b64encode(png).decode("ascii"), "revised_prompt": None} for png in images],
        }

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            # One request per connection: no keep-alive connection pins a handler thread at stop().
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                if server.log_requests:
                    super().log_message(format, *args)

            def do_GET(self) -> None:
                self._handle(lambda: server.models() if self._route() == "/v1/models" else None)

            def do_POST(self) -> None:
                self._handle(self._post)

            def _route(self) -> str:
                return self.path.split("?", 1)[0].rstrip("/")

            def _post(self) -> dict[str, Any] | None:
                route = self._route()
                if route not in ("/v1/images/generations", "/v1/images/edits", "/v1/chat/completions"):
                    return None
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    raise ApiError(
                        413, f"request body of {length} bytes is over the {MAX_BODY}-byte limit", "body_too_large"
                    )
                body = self.rfile.read(length)
                if route.endswith("/edits"):
                    return server.edit(*_multipart(self.headers.get("Content-Type", ""), body))
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
                        status, payload = 404, _error(404, f"no route {self.command} {self.path}", "not_found")
                except ApiError as exc:
                    status, payload = exc.status, _error(exc.status, exc.message, exc.code)
                except Exception as exc:  # a bug here must still answer, as a 500 the client can read
                    status, payload = 500, _error(500, f"{type(exc).__name__}: {exc}", "internal_error")
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

        # A client that never finishes its body must not hang stop(): handler threads are not joined.
        return self._serve(Handler, "paint-server", join_handlers=False)


def _error(status: int, message: str, code: str) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "code": code}}


def _png_side(png: bytes) -> int:
    with Image.open(io.BytesIO(png)) as img:
        return int(img.size[0])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--error-rate", type=float, default=0.3, help="chance a generation has one mistake")
    parser.add_argument("--edit-error-rate", type=float, default=0.0, help="chance an edit is ignored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    parser.add_argument("--log", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    server = PaintServer(
        error_rate=args.error_rate,
        edit_error_rate=args.edit_error_rate,
        seed=args.seed,
        delay_s=args.delay,
        port=args.port,
        log_requests=args.log,
    ).start()
    print(f"{server.url}  ({NOTICE}); Ctrl-C stops it", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops it as cleanly as Ctrl-C
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
