"""Client for vllm-omni's OpenAI-style image API (``/v1/images/generations`` and ``/v1/images/edits``).

:class:`OmniImageClient` implements :class:`r3graph.image_generation.ImageBackend` over HTTP, for a
vllm-omni server (BAGEL, Qwen-Image, ...) or the scene-world stand-in
(:mod:`r3graph.scenes.paint_server`). Every failure becomes :class:`R3ModelError` with a
``transient`` flag; the client never retries by itself, because the graph's RetryPolicy is the one
retry layer (two layers would multiply the attempts). Requests carry the current trace context
(``traceparent``) through the same httpx hook the chat client uses.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from typing import Any, Self
from urllib.parse import urlparse

import httpx
from PIL import Image, UnidentifiedImageError

from r3graph.calls import TRANSIENT_STATUS, is_transient
from r3graph.errors import R3ModelError
from r3graph.image_generation import ImageParams
from r3graph.serving.propagation import ASYNC_EVENT_HOOKS

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# httpx's own names: "ConnectError" says nothing of "Connection", so is_transient alone would miss it.
_TRANSPORT_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _base(base_url: str) -> str:
    """``http://host:port`` or ``.../v1`` -> the ``/v1`` form. The same rule as
    ``r3graph.serving.client.normalize_base_url``, kept here so this module does not import
    langchain-openai."""
    url = base_url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def _server_message(resp: httpx.Response) -> str:
    """The OpenAI-style ``error.message`` (or ``detail``), else the start of the body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if body.get("detail"):
            return str(body["detail"])[:300]
    return str(body)[:300]


def _as_png(data: bytes, url: str) -> bytes:
    """PNG bytes as they came (PNG stays byte-exact), other readable formats re-encoded as PNG."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # the whole image, so a truncated one fails here
            if img.format == "PNG":
                return data
            out = io.BytesIO()
            img.save(out, format="PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise R3ModelError(f"{url}: the reply's image is not readable ({type(exc).__name__}: {exc})") from exc


def _fields(params: ImageParams) -> dict[str, Any]:
    """The request fields the params set (None leaves the server's default)."""
    out = {"size": params.size, "seed": params.seed, "num_inference_steps": params.steps,
           "guidance_scale": params.guidance}
    return {k: v for k, v in out.items() if v is not None}


class OmniImageClient:
    """Text -> image and image + instruction -> image against a vllm-omni-compatible server.

    One ``httpx.AsyncClient`` per instance, created on first use and closed by :meth:`aclose` (or
    ``async with``). ``timeout`` bounds each call in total (upload, generation, download); inside a
    graph the run's ``call_timeout_s`` also bounds it (whichever is shorter fires).
    """

    def __init__(self, base_url: str, model: str = "", api_key: str | None = None, timeout: float = 120.0,
                 max_connections: int = 8, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = _base(base_url)
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_connections = max_connections
        self._transport = transport  # e.g. httpx.MockTransport in tests, or a custom proxy/TLS transport
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._http = httpx.AsyncClient(
                headers=headers,
                limits=httpx.Limits(max_connections=self.max_connections),
                trust_env=(urlparse(self.base_url).hostname or "") not in _LOOPBACK,  # no proxy for loopback
                event_hooks=ASYNC_EVENT_HOOKS,  # traceparent of the current span on every request
                transport=self._transport,
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def agenerate(self, prompt: str, params: ImageParams) -> bytes:
        body: dict[str, Any] = {"prompt": prompt, "n": 1, "response_format": "b64_json", **_fields(params)}
        if self.model:
            body["model"] = self.model
        return await self._post("images/generations", json=body)

    async def aedit(
        self, image: bytes, instruction: str, params: ImageParams
    ) -> bytes:
        data: dict[str, str] = {"prompt": instruction, "response_format": "b64_json",
                                **{k: str(v) for k, v in _fields(params).items()}}
        if self.model:
            data["model"] = self.model
        return await self._post("images/edits", data=data, files={"image": ("image.png", image, "image/png")})

    async def _post(self, path: str, **request: Any) -> bytes:
        url = f"{self.base_url}/{path}"
        limit = self.timeout
        try:
            # httpx's timeout is per phase (connect, each read...); asyncio.timeout bounds the whole call.
            async with asyncio.timeout(limit):
                resp = await self._client().post(url, timeout=limit, **request)
        except TimeoutError as exc:
            raise R3ModelError(f"POST {url} timed out after {limit}s", transient=True) from exc
        except httpx.HTTPError as exc:
            raise _transport_error("POST", url, exc) from exc
        _check_status("POST", url, resp)
        return _as_png(self._image_bytes(resp, url), url)

    @staticmethod
    def _image_bytes(resp: httpx.Response, url: str) -> bytes:
        try:
            b64 = resp.json()["data"][0]["b64_json"]
            if not isinstance(b64, str) or not b64:
                raise TypeError("b64_json is empty or not a string")
            return base64.b64decode(b64, validate=True)
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as exc:
            raise R3ModelError(f"POST {url}: malformed reply, expected data[0].b64_json with a base64 image "
                               f"({type(exc).__name__}: {exc})") from exc


def _transport_error(method: str, url: str, exc: httpx.HTTPError) -> R3ModelError:
    transient = isinstance(exc, _TRANSPORT_TRANSIENT) or is_transient(exc)
    return R3ModelError(f"{method} {url} failed: {type(exc).__name__}: {exc}", transient=transient)


def _check_status(method: str, url: str, resp: httpx.Response) -> None:
    if resp.status_code != 200:
        raise R3ModelError(f"{method} {url} -> HTTP {resp.status_code}: {_server_message(resp)}",
                           transient=resp.status_code in TRANSIENT_STATUS)


async def discover_image_model(base_url: str, timeout: float = 10.0) -> str:  # noqa: ASYNC109 - as discover_model
    """The first model id the server lists at ``GET /v1/models`` (vllm-omni serves exactly one)."""
    url = f"{_base(base_url)}/models"
    try:
        async with httpx.AsyncClient(trust_env=(urlparse(url).hostname or "") not in _LOOPBACK,
                                     timeout=timeout, event_hooks=ASYNC_EVENT_HOOKS) as http:
            resp = await http.get(url)
    except httpx.HTTPError as exc:
        raise _transport_error("GET", url, exc) from exc
    _check_status("GET", url, resp)
    try:
        return str(resp.json()["data"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise R3ModelError(f"GET {url}: lists no models") from exc
