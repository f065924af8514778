"""vllm-omni's error answers -> :class:`R3ModelError` with a message saying what to fix, and ``transient``.

The rules come from what vllm-omni 0.30.0's request handling answers (checked against its code by
tests/conformance): every error is vLLM's envelope ``{"error": {"message", "type", "param", "code"}}``.

- 400 ``Model mismatch: request specifies 'X' but server is running 'Y'`` (images API) and 404
  ``The model `X` does not exist`` (chat API): permanent; the client's ``model`` is wrong.
- 400 on ``response_format``: the images API answers only ``b64_json`` (and ``file``).
- 400 ``Received multiple input images...`` / ``At most N images`` / ``Multiple input images are not
  supported``: the model takes fewer input images than were sent. Permanent.
- 400 ``Unsupported output modalities image``: a chat request for an image from a model without an
  image stage. Permanent.
- 503 with vllm-omni's own configuration messages (``Multi-stage engine not initialized``, ``Stage
  configs not found``, ``No diffusion stage found``, ``... is not initialized for multi-stage image
  ...``): the server was started without what image generation needs. vllm-omni sets its app state up
  before it serves, so these do not clear by waiting: permanent, unlike other 503s (an overloaded
  server, a proxy) which stay transient.
- 500 (``Image generation failed: ...``, engine errors): transient, as every 5xx/429/timeout.
"""

from __future__ import annotations

import re

import httpx

from r3graph.calls import TRANSIENT_STATUS
from r3graph.errors import R3ModelError

_MISMATCH = re.compile(
    r"Model mismatch: request specifies '(?P<asked>[^']*)' but server is running '(?P<served>[^']*)'")
_NO_SUCH_MODEL = re.compile(r"The model `(?P<asked>[^`]*)` does not exist\. Valid aliases: (?P<served>[^.]*)")
_TOO_MANY_IMAGES = ("input images", "Only a single image is supported", "Multiple input images are not supported")
_NOT_SERVING_IMAGES = ("Multi-stage engine not initialized", "Stage configs not found", "No diffusion stage found",
                       "is not initialized for multi-stage image")


def server_message(resp: httpx.Response) -> str:
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


def status_error(method: str, url: str, resp: httpx.Response) -> R3ModelError:
    """The error for a non-200 answer: what the server said, what to change, and whether to retry."""
    message = server_message(resp)
    head = f"{method} {url} -> HTTP {resp.status_code}: {message}"
    status = resp.status_code
    if status in (400, 404) and (match := _MISMATCH.search(message) or _NO_SUCH_MODEL.search(message)):
        served = match["served"].strip()
        return R3ModelError(f"{head} (the server serves {served!r}: pass model={served!r} or leave model empty)")
    if status == 400 and "response_format" in message:
        return R3ModelError(f"{head} (vllm-omni answers images as b64_json only)")
    if status == 400 and any(s in message for s in _TOO_MANY_IMAGES):
        return R3ModelError(f"{head} (this model edits fewer input images at once: send fewer)")
    if status == 400 and "Unsupported output modalities" in message:
        return R3ModelError(f"{head} (the served model has no image output: serve an image model with --omni)")
    if status == 503 and any(s in message for s in _NOT_SERVING_IMAGES):
        return R3ModelError(f"{head} (the server was started without an image-generation stage; waiting "
                            "does not change that: serve an image model with `vllm serve MODEL --omni`)")
    return R3ModelError(head, transient=status in TRANSIENT_STATUS)
