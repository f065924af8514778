"""Turn every accepted image form into a checked ``data:`` URL, once, before any model call.

Accepted: a filesystem path (str or Path), ``data:image/...;base64,`` URLs, raw bytes, PIL images,
and http(s) URLs when the context allows remote fetches. The original bytes are kept when they are
already in a format every backend reads (PNG, JPEG, WebP), so the same file always gives the same
URL and hash; anything else is re-encoded as PNG.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import ipaddress
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from PIL import Image, UnidentifiedImageError

from r3graph.errors import R3InputError

PASS_THROUGH_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
READABLE_FORMATS = {*PASS_THROUGH_FORMATS, "GIF", "BMP", "TIFF"}


def check_image_bytes(data: bytes, *, max_bytes: int, max_pixels: int, label: str) -> tuple[str, int, int]:
    """Decode fully (not just the header) so truncated files fail here, not inside the model server."""
    if not data:
        raise R3InputError(f"{label}: the image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise R3InputError(f"{label}: the image is {len(data)} bytes; the limit is {max_bytes} (max_image_bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
            if width * height > max_pixels:
                raise R3InputError(
                    f"{label}: the image is {width}x{height} pixels; the limit is {max_pixels} (max_image_pixels)"
                )
            if fmt not in READABLE_FORMATS:
                raise R3InputError(
                    f"{label}: unsupported image format {fmt or 'unknown'}; use PNG, JPEG or WebP"
                )
            img.load()
    except R3InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise R3InputError(f"{label}: not a readable image ({type(exc).__name__}: {exc})") from exc
    if width == 0 or height == 0:
        raise R3InputError(f"{label}: the image has zero size ({width}x{height})")
    return fmt, width, height


def image_data_url(data: bytes, fmt: str) -> str:
    if fmt not in PASS_THROUGH_FORMATS:
        with Image.open(io.BytesIO(data)) as img:
            buffer = io.BytesIO()
            img.convert("RGB").save(buffer, format="PNG")
            data, fmt = buffer.getvalue(), "PNG"
    return f"data:{PASS_THROUGH_FORMATS[fmt]};base64,{base64.b64encode(data).decode('ascii')}"


def _decode_data_url(url: str, label: str) -> tuple[bytes, str]:
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise R3InputError(f"{label}: data URLs must look like data:image/png;base64,<base64 bytes>")
    mime = header[len("data:") : -len(";base64")].lower()
    if mime not in PASS_THROUGH_FORMATS.values():
        raise R3InputError(f"{label}: data URL MIME type {mime or '(none)'!r} is not image/png, image/jpeg, image/webp")
    try:
        return base64.b64decode(payload, validate=True), mime
    except (binascii.Error, ValueError) as exc:
        raise R3InputError(f"{label}: the data URL's base64 payload is invalid") from exc


def _read_file(text: str, max_bytes: int, label: str, root: str | None) -> bytes:
    path = Path(text).expanduser()
    if root is not None:
        # Resolve symlinks and '..' before the check, so neither can step outside the folder.
        resolved, allowed = path.resolve(), Path(root).expanduser().resolve()
        if not resolved.is_relative_to(allowed):
            raise R3InputError(f"{label}: {text[:200]!r} is outside the allowed image folder (image_root)")
        path = resolved
    if not path.is_file():
        raise R3InputError(f"{label}: no such image file: {text[:200]!r}")
    if path.stat().st_size > max_bytes:
        raise R3InputError(f"{label}: {path.name} is larger than max_image_bytes={max_bytes}")
    return path.read_bytes()


def is_public_host(host: str) -> bool:
    """False for loopback, private, link-local and other non-global addresses (SSRF guard)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_global for info in infos)


async def _fetch(url: str, *, max_bytes: int, timeout_s: float, allow_private: bool, label: str) -> bytes:
    import httpx  # only needed when remote images are enabled

    host = urlparse(url).hostname or ""
    if not allow_private and not is_public_host(host):
        raise R3InputError(f"{label}: refusing to fetch from non-public host {host!r}")
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            async with client.stream("GET", url) as response:
                response.raise_for_status()
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise R3InputError(f"{label}: remote image exceeds {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise R3InputError(f"{label}: could not fetch {url[:120]!r}: {exc}") from exc


async def normalise_image(
    image: Any,
    *,
    index: int = 0,
    max_bytes: int,
    max_pixels: int,
    allow_remote: bool = False,
    allow_private_hosts: bool = False,
    allow_paths: bool = True,
    path_root: str | None = None,
    fetch_timeout_s: float = 10.0,
) -> str:
    """One input image -> a checked data URL."""
    label = f"images[{index}]"
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        try:
            image.convert("RGB").save(buffer, format="PNG")
        except (OSError, ValueError) as exc:
            raise R3InputError(f"{label}: the PIL image cannot be encoded: {exc}") from exc
        data = buffer.getvalue()
    elif isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
    elif isinstance(image, str | Path):
        text = str(image)
        if text.startswith("data:"):
            data, declared_mime = _decode_data_url(text, label)
            fmt, _, _ = check_image_bytes(data, max_bytes=max_bytes, max_pixels=max_pixels, label=label)
            if PASS_THROUGH_FORMATS.get(fmt) != declared_mime:
                raise R3InputError(f"{label}: data URL says {declared_mime} but the bytes are {fmt}")
            return image_data_url(data, fmt)
        elif text.startswith(("http://", "https://")):
            if not allow_remote:
                raise R3InputError(
                    f"{label}: remote image URLs are off; set allow_remote_images=True in the context "
                    "or pass the image's bytes or a local path"
                )
            data = await _fetch(
                text, max_bytes=max_bytes, timeout_s=fetch_timeout_s, allow_private=allow_private_hosts, label=label
            )
        elif "://" in text[:16]:
            raise R3InputError(f"{label}: unsupported URL scheme in {text[:40]!r}; use a path, data: or http(s)")
        else:
            if not allow_paths:
                raise R3InputError(
                    f"{label}: file paths are not accepted here (untrusted input); pass the image's bytes "
                    "or a data URL"
                )
            data = await asyncio.to_thread(_read_file, text, max_bytes, label, path_root)
    else:
        raise R3InputError(
            f"{label}: unsupported image type {type(image).__name__}; "
            "use a path, data URL, http(s) URL, bytes or a PIL image"
        )
    fmt, _, _ = check_image_bytes(data, max_bytes=max_bytes, max_pixels=max_pixels, label=label)
    return image_data_url(data, fmt)
