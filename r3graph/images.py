"""Turn every accepted image form into a checked ``data:`` URL, once, before any model call.

Accepted: a filesystem path (str or Path), ``data:image/...;base64,`` URLs, raw bytes, PIL images,
and http(s) URLs when the context allows remote fetches. :func:`normalise_images` is the public
entry point (the graph's prepare node and the CLI's up-front check both call it).

Where the work happens, so that no input can hold the event loop: file reads in a thread (bounded
reads of regular files only, see :mod:`r3graph.image_files`), remote fetches asynchronously (see
:mod:`r3graph.image_fetch`), and every decode in a worker process with a time budget
(:mod:`r3graph.image_decode`, :mod:`r3graph.image_worker`). Budgets: ``image_timeout_s`` per image,
what is left of ``run_timeout_s`` for the whole request; ``max_image_pixels`` per image and
``max_request_pixels`` for all of a request's images together.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path
from typing import Any

from PIL import Image

from r3graph.context import R3Context, resolve_context
from r3graph.errors import R3InputError
from r3graph.image_decode import (
    PASS_THROUGH_FORMATS,
    READABLE_FORMATS,
    DecodeLimits,
    Normalised,
    check_image_bytes,
    decode_data_url,
    is_small_png,
    normalise_bytes,
    normalise_data_url,
    normalise_in_worker,
)
from r3graph.image_fetch import fetch_image
from r3graph.image_files import read_image_file
from r3graph.image_worker import run_in_worker
from r3graph.limits import MAX_IMAGES_PER_REQUEST

# base64 of a small PNG (r3graph.image_decode.SMALL_PNG_BYTES) with room for MIME line breaks: a data URL
# this short is decoded here and, if it is a small PNG, checked in a thread; longer ones go to a worker.
SMALL_DATA_URL_CHARS = 96 * 1024

__all__ = [
    "MAX_IMAGES_PER_REQUEST",
    "PASS_THROUGH_FORMATS",
    "READABLE_FORMATS",
    "check_image_bytes",
    "image_data_url",
    "normalise_image",
    "normalise_image_details",
    "normalise_images",
]


def image_data_url(data: bytes, fmt: str) -> str:
    """Bytes this process made (a generated PNG) as a data URL; re-encoded as PNG if need be."""
    if fmt not in PASS_THROUGH_FORMATS:
        with Image.open(io.BytesIO(data)) as img:
            buffer = io.BytesIO()
            img.convert("RGB").save(buffer, format="PNG")
            data, fmt = buffer.getvalue(), "PNG"
    return f"data:{PASS_THROUGH_FORMATS[fmt]};base64,{base64.b64encode(data).decode('ascii')}"


def _pil_to_png(image: Image.Image, limits: DecodeLimits, label: str) -> bytes:
    """A caller's in-memory PIL image as PNG bytes (in a thread: Pillow releases the GIL to encode).
    Its size is checked first, so a huge one costs no encode."""
    width, height = image.size
    if width * height > limits.max_pixels:
        raise R3InputError(
            f"{label}: the image is {width}x{height} pixels; the limit is {limits.max_pixels} (max_image_pixels)"
        )
    if max(width, height) > limits.max_side:
        image = image.copy()
        image.thumbnail((limits.max_side, limits.max_side), Image.Resampling.BICUBIC, reducing_gap=2.0)
    buffer = io.BytesIO()
    try:
        image.convert("RGB").save(buffer, format="PNG", compress_level=1)
    except Exception as exc:
        raise R3InputError(f"{label}: the PIL image cannot be encoded: {type(exc).__name__}: {exc}") from exc
    return buffer.getvalue()


async def normalise_image(image: Any, **kwargs: Any) -> str:
    """One input image -> a checked, normalised data URL (see :func:`normalise_image_details`)."""
    return (await normalise_image_details(image, **kwargs)).url


async def normalise_image_details(
    image: Any,
    *,
    index: int = 0,
    max_bytes: int,
    max_pixels: int,
    max_side: int = 2048,
    pixels_left: int | None = None,
    allow_remote: bool = False,
    allow_private_hosts: bool = False,
    allow_paths: bool = True,
    path_root: str | None = None,
    timeout_s: float = 20.0,
) -> Normalised:
    """One input image -> a checked, normalised data URL, within ``timeout_s`` seconds."""
    label = f"images[{index}]"
    limits = DecodeLimits(max_bytes=max_bytes, max_pixels=max_pixels, max_side=max_side, pixels_left=pixels_left)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    budget = "image_timeout_s, or what is left of run_timeout_s"
    if isinstance(image, Image.Image):
        data = await asyncio.to_thread(_pil_to_png, image, limits, label)
    elif isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
    elif isinstance(image, str | Path):
        text = str(image)
        if text[:5].lower() == "data:":
            # base64 of max_bytes is 4/3 as long; anything much longer is refused without decoding
            if len(text) > max_bytes * 4 // 3 + max_bytes // 38 + 1024:
                raise R3InputError(f"{label}: the data URL is {len(text)} characters, too long for an image within "
                                   f"max_image_bytes; the limit is {max_bytes} bytes")
            if len(text) > SMALL_DATA_URL_CHARS:
                return await run_in_worker(normalise_data_url, text, limits, label, timeout_s=timeout_s,
                                           label=label, budget=budget)
            data, declared = decode_data_url(text, label)  # short: decoding it here costs microseconds
            return await _normalise_checked_bytes(data, limits, label, deadline, budget, declared)
        if text[:8].lower().startswith(("http://", "https://")):
            if not allow_remote:
                raise R3InputError(
                    f"{label}: remote image URLs are off; set allow_remote_images=True in the context "
                    "or pass the image's bytes or a local path"
                )
            data = await fetch_image(text, max_bytes=max_bytes, deadline=deadline, allow_private=allow_private_hosts,
                                     label=label)
        elif "://" in text[:16]:
            raise R3InputError(f"{label}: unsupported URL scheme in {text[:40]!r}; use a path, data: or http(s)")
        else:
            if not allow_paths:
                raise R3InputError(
                    f"{label}: file paths are not accepted here (untrusted input); pass the image's bytes "
                    "or a data URL"
                )
            read = asyncio.to_thread(read_image_file, text, max_bytes=max_bytes, root=path_root, label=label)
            try:
                data = await asyncio.wait_for(read, timeout=max(deadline - loop.time(), 0.001))
            except TimeoutError as exc:
                raise R3InputError(f"{label}: reading {text[:120]!r} took too long ({budget})") from exc
    else:
        raise R3InputError(
            f"{label}: unsupported image type {type(image).__name__}; "
            "use a path, data URL, http(s) URL, bytes or a PIL image"
        )
    return await _normalise_checked_bytes(data, limits, label, deadline, budget)


async def _normalise_checked_bytes(data: bytes, limits: DecodeLimits, label: str, deadline: float, budget: str,
                                   declared_mime: str | None = None) -> Normalised:
    """The decode of one image's bytes: a small PNG in a thread (bounded work, see
    :data:`r3graph.image_decode.SMALL_PNG_BYTES`), anything else in a worker process with a time budget."""
    if not data or len(data) > limits.max_bytes:  # refused here, without a trip to a worker
        normalise_bytes(data, limits, label)
    if is_small_png(data):
        return await asyncio.to_thread(normalise_bytes, data, limits, label, declared_mime)
    return await run_in_worker(normalise_in_worker, data, limits, label, declared_mime,
                               timeout_s=deadline - asyncio.get_running_loop().time(), label=label, budget=budget)


async def normalise_images(
    images: Any, context: R3Context | dict[str, Any] | None = None, *, deadline: float | None = None
) -> list[str]:
    """A request's images -> checked data URLs, or R3InputError/R3ConfigError saying what to fix.

    ``context``: the request's R3Context (or a dict of its fields); ``deadline``: a ``time.time()``
    by which all images must be done (default: ``run_timeout_s`` from now)."""
    ctx = resolve_context(context)
    if isinstance(images, str | bytes) or not isinstance(images, list | tuple):
        raise R3InputError("images must be a list (of paths, URLs, bytes, data URLs or PIL images)")
    if not 1 <= len(images) <= MAX_IMAGES_PER_REQUEST:
        raise R3InputError(f"images must hold 1 to {MAX_IMAGES_PER_REQUEST} images, got {len(images)}")
    end = deadline if deadline is not None else time.time() + ctx.run_timeout_s
    pixels_left = ctx.max_request_pixels
    urls = []
    for index, image in enumerate(images):
        left_s = end - time.time()
        if left_s <= 0:
            raise R3InputError(f"images[{index}]: run_timeout_s ran out while preparing the images")
        result = await normalise_image_details(
            image,
            index=index,
            max_bytes=ctx.max_image_bytes,
            max_pixels=ctx.max_image_pixels,
            max_side=ctx.max_image_side,
            pixels_left=pixels_left,
            allow_remote=ctx.allow_remote_images,
            allow_private_hosts=ctx.allow_private_image_hosts,
            allow_paths=ctx.allow_file_paths,
            path_root=ctx.image_root,
            timeout_s=min(ctx.image_timeout_s, left_s),
        )
        pixels_left -= result.source_pixels
        urls.append(result.url)
    return urls
