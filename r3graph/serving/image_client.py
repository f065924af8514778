"""Client for vllm-omni's image generation: its images API or its chat API with ``modalities: ["image"]``.

:class:`OmniImageClient` implements :class:`r3graph.image_generation.ImageBackend` over HTTP, for a
vllm-omni server (BAGEL, Qwen-Image, Qwen-Image-Edit, ...) or the scene-world stand-in
(:mod:`r3graph_scenes.paint_server`, images API only). ``api="images"`` speaks
``/v1/images/generations`` (JSON) and ``/v1/images/edits`` (multipart); ``api="chat"`` speaks
``/v1/chat/completions`` the way vllm-omni's BAGEL example does: the prompt as the user's text, the
image to edit as an ``image_url`` data URL, ``modalities: ["image"]`` and the generation fields at
the top level of the body, the image read from the reply's ``image_url`` content part. Which fields
each path passes on to the model was checked against vllm-omni's code (tests/conformance).

Every failure becomes :class:`R3ModelError` with a
``transient`` flag; the client never retries by itself, because the graph's RetryPolicy is the one
retry layer (two layers would multiply the attempts). Requests carry the current trace context
(``traceparent``) through the same httpx hook the chat client uses.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Self
from urllib.parse import urlparse

import httpx
from PIL import Image, UnidentifiedImageError

from r3graph.calls import is_transient
from r3graph.errors import R3ConfigError, R3ModelError
from r3graph.image_generation import ImageParams
from r3graph.serving.omni_errors import status_error
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


# Fields the client owns: extra_body may not replace them (the reply would no longer be read right).
_OWN_FIELDS = frozenset({"prompt", "messages", "model", "n", "response_format", "modalities", "stream", "image"})
Api = Literal["images", "chat"]


def _fields(params: ImageParams, guidance_field: str) -> dict[str, Any]:
    """The request fields the params set (None leaves the server's default)."""
    out = {"size": params.size, "seed": params.seed, "num_inference_steps": params.steps,
           guidance_field: params.guidance}
    return {k: v for k, v in out.items() if v is not None}


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class OmniImageClient:
    """Text -> image and image + instruction -> image against a vllm-omni-compatible server.

    One ``httpx.AsyncClient`` per instance, created on first use and closed by :meth:`aclose` (or
    ``async with``). ``timeout`` bounds each call in total (upload, generation, download); inside a
    graph the run's ``call_timeout_s`` also bounds it (whichever is shorter fires).

    ``api`` picks the endpoints (see the module docstring; docs/image-mode.md says which per model
    family). ``guidance_field`` is the request field ``ImageParams.guidance`` is sent as
    (``guidance_scale``; BAGEL through chat reads ``cfg_text_scale``, Qwen-Image ``true_cfg_scale``),
    ``extra_body`` model-specific fields sent as they are (e.g. ``{"cfg_img_scale": 2.0}``).
    """

    def __init__(self, base_url: str, model: str = "", api_key: str | None = None, timeout: float = 120.0,
                 max_connections: int = 8, transport: httpx.AsyncBaseTransport | None = None, api: Api = "images",
                 guidance_field: str = "guidance_scale", extra_body: Mapping[str, Any] | None = None) -> None:
        if api not in ("images", "chat"):
            raise R3ConfigError(f"api must be 'images' or 'chat', got {api!r}")
        clash = _OWN_FIELDS & {guidance_field, *(extra_body or {})}
        if clash:
            raise R3ConfigError(f"extra_body/guidance_field may not set {sorted(clash)}: the client sends those itself")
        self.base_url = _base(base_url)
        self.api: Api = api
        self.guidance_field = guidance_field
        self.extra_body = dict(extra_body or {})
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
        if self.api == "chat":
            return await self._chat(prompt, [], params)
        body: dict[str, Any] = {**self.extra_body, "prompt": prompt, "n": 1, "response_format": "b64_json",
                                **_fields(params, self.guidance_field)}
        if self.model:
            body["model"] = self.model
        return await self._post("images/generations", json=body)

    async def aedit(self, image: bytes | Sequence[bytes], instruction: str, params: ImageParams) -> bytes:
        """Edit ``image`` (or several images, for models that combine them, e.g. Qwen-Image-Edit-2509)."""
        images = [image] if isinstance(image, bytes) else list(image)
        if not images:
            raise R3ConfigError("aedit needs at least one image")
        if self.api == "chat":
            return await self._chat(instruction, images, params)
        fields = {**self.extra_body, **_fields(params, self.guidance_field)}
        data: dict[str, str] = {"prompt": instruction, "response_format": "b64_json",
                                **{k: str(v) for k, v in fields.items()}}
        if self.model:
            data["model"] = self.model
        files = [("image", ("image.png", png, "image/png")) for png in images]
        return await self._post("images/edits", data=data, files=files)

    async def _chat(self, prompt: str, images: list[bytes], params: ImageParams) -> bytes:
        # vllm-omni reads only the user's messages, text parts joined, and only data: image URLs.
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
        content += [{"type": "image_url", "image_url": {"url": _data_url(png)}} for png in images]
        body: dict[str, Any] = {**self.extra_body, "messages": [{"role": "user", "content": content}],
                                "modalities": ["image"], **_fields(params, self.guidance_field)}
        if self.model:
            body["model"] = self.model
        return await self._post("chat/completions", json=body)

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
        reader = _chat_image_bytes if path == "chat/completions" else self._image_bytes
        return _as_png(reader(resp, url), url)

    @staticmethod
    def _image_bytes(resp: httpx.Response, url: str) -> bytes:
        try:
            data = resp.json()["data"]
            if data == []:  # vllm-omni's answer when the diffusion stage finished without an image
                raise R3ModelError(f"POST {url}: the reply holds no image (data is empty)")
            b64 = data[0]["b64_json"]
            if not isinstance(b64, str) or not b64:
                raise TypeError("b64_json is empty or not a string")
            return base64.b64decode(b64, validate=True)
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as exc:
            raise R3ModelError(f"POST {url}: malformed reply, expected data[0].b64_json with a base64 image "
                               f"({type(exc).__name__}: {exc})") from exc


def _chat_image_bytes(resp: httpx.Response, url: str) -> bytes:
    """The first ``image_url`` data URL among the reply's choices (a text choice may come first when
    the request also asked for text); a reply with text only says what the model wrote instead."""
    try:
        choices = resp.json()["choices"]
        texts: list[str] = []
        for choice in choices:
            content = choice["message"]["content"]
            if isinstance(content, str):
                texts.append(content)
                continue
            for part in content or []:
                url_value = part.get("image_url", {}).get("url", "") if isinstance(part, dict) else ""
                if isinstance(url_value, str) and url_value.startswith("data:image"):
                    return base64.b64decode(url_value.split(",", 1)[1], validate=True)
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, binascii.Error) as exc:
        raise R3ModelError(f"POST {url}: malformed reply, expected choices[].message.content with an image_url "
                           f"data URL ({type(exc).__name__}: {exc})") from exc
    said = f": {' '.join(texts)[:200]!r}" if texts else ""
    raise R3ModelError(f"POST {url}: the reply holds no image{said}")


def _transport_error(method: str, url: str, exc: httpx.HTTPError) -> R3ModelError:
    transient = isinstance(exc, _TRANSPORT_TRANSIENT) or is_transient(exc)
    return R3ModelError(f"{method} {url} failed: {type(exc).__name__}: {exc}", transient=transient)


def _check_status(method: str, url: str, resp: httpx.Response) -> None:
    if resp.status_code != 200:
        raise status_error(method, url, resp)


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
