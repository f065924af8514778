"""Check, decode and normalise one image's bytes into a ``data:`` URL.

This is the CPU-heavy half of image input, and it runs in a worker process
(:mod:`r3graph.image_worker`), never on the event loop: a hostile file can only cost its own worker,
which is killed when the image's time budget runs out. Everything here is bounded explicitly too:

- bytes are counted before decoding, pixels from the header before decoding (the decompression-bomb
  guard), and progressive JPEGs by their number of scans (each scan is a full pass over the image);
- animated images (GIF, APNG, animated WebP): only the first frame is ever decoded or sent;
- an image larger than ``max_side`` is scaled down while decoding (JPEG draft mode decodes at 1/2,
  1/4 or 1/8 scale directly), so an ordinary phone photo costs a fraction of its full decode.

The original bytes are kept when they are already in a format every backend reads (PNG, JPEG, WebP)
and need no scaling or rotation, so the same file always gives the same URL; anything else is
re-encoded (JPEG sources as JPEG, others as PNG).
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

from r3graph.errors import R3InputError

PASS_THROUGH_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# MPO (phone cameras' stereo/depth JPEGs) is a JPEG followed by more JPEGs: a data URL may call it
# image/jpeg, and only its first image is decoded and sent (re-encoded, without the others).
DATA_URL_MIME = {**PASS_THROUGH_FORMATS, "MPO": "image/jpeg"}
READABLE_FORMATS = {*DATA_URL_MIME, "GIF", "BMP", "TIFF"}
# libjpeg's own progressive script writes 10 scans and mozjpeg about 12; each scan is one more pass
# over the whole coefficient buffer, which is how a 1 MiB file with thousands of scans takes minutes.
MAX_JPEG_SCANS = 64
JPEG_QUALITY = 90  # for scaled or rotated JPEG sources; PNG would make a photo 5-10x larger
EXIF_ORIENTATION = 0x0112
# A PNG this small is checked in a thread of this process, not in a worker: its decoder's work is
# bounded by its bytes and its header's pixels (text and ICC chunks are capped by Pillow), a fraction
# of a millisecond for the 64x64 scenes. The trip to a worker process, and on a busy machine the wait
# for a (niced) worker to be scheduled, is what such images cost at high concurrency: 64 runs at once
# reached their first model call 0.7 s late (bench/concurrency_overhead.py). JPEG is not included: its
# header may claim far more pixels than its bytes carry, and a thread cannot be stopped. Nor are PNGs
# with compressed text or ICC chunks (zTXt, iTXt, iCCP) or animation: 60 KB of zTXt chunks inflate to
# 60 MB, about 0.3 s of CPU, which only a worker's time budget can cut.
SMALL_PNG_BYTES = 64 * 1024
SMALL_PNG_PIXELS = 256 * 256
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL_PNG_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT",
                              b"pHYs", b"bKGD", b"tEXt", b"tIME"})


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int
    max_pixels: int  # header pixels of this image (the decompression-bomb guard)
    max_side: int  # longer side after normalisation; larger images are scaled down
    pixels_left: int | None = None  # what the request's pixel budget still allows (None: no request budget)


@dataclass(frozen=True)
class Normalised:
    url: str  # data:<mime>;base64,...
    width: int  # as sent
    height: int
    source_pixels: int  # width x height in the file's header (counted against the request's budget)


def check_size(size: int, limits: DecodeLimits, label: str) -> None:
    if size == 0:
        raise R3InputError(f"{label}: the image is empty (0 bytes)")
    if size > limits.max_bytes:
        raise R3InputError(f"{label}: the image is {size} bytes; the limit is {limits.max_bytes} (max_image_bytes)")


def decode_data_url(url: str, label: str) -> tuple[bytes, str]:
    """``data:<mime>[;param=value]*;base64,<payload>`` -> (bytes, mime). Parameters such as
    ``;charset=`` are allowed and ignored; whitespace in the payload (base64 wrapped at 76 columns,
    as MIME writes it) is removed before a strict decode."""
    header, sep, payload = url.partition(",")
    params = [p.strip().lower() for p in header[len("data:"):].split(";")]
    if not sep or len(params) < 2 or params[-1] != "base64":
        raise R3InputError(f"{label}: data URLs must look like data:image/png;base64,<base64 bytes>")
    mime = params[0]
    if mime not in set(DATA_URL_MIME.values()):
        raise R3InputError(f"{label}: data URL MIME type {mime or '(none)'!r} is not image/png, image/jpeg, image/webp")
    try:
        return base64.b64decode("".join(payload.split()), validate=True), mime
    except (binascii.Error, ValueError) as exc:
        raise R3InputError(f"{label}: the data URL's base64 payload is invalid ({exc})") from exc


def is_small_png(data: bytes) -> bool:
    """``data`` starts like a PNG whose header (IHDR, which PNG requires first) gives at most
    :data:`SMALL_PNG_PIXELS`, within :data:`SMALL_PNG_BYTES`, holding only :data:`SMALL_PNG_CHUNKS`.
    Whether it really is a readable PNG is for :func:`normalise_bytes` to find out; this only decides
    where that check may run."""
    if not 24 <= len(data) <= SMALL_PNG_BYTES or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return False
    width, height = struct.unpack(">II", data[16:24])
    if not 0 < width * height <= SMALL_PNG_PIXELS:
        return False
    at = 8  # walk the chunk headers (at most ~5000 in 64 KiB): only uncompressed, still-image chunks
    while at + 8 <= len(data):
        kind = data[at + 4 : at + 8]
        if kind not in SMALL_PNG_CHUNKS:
            return False
        if kind == b"IEND":
            break
        at += 12 + int.from_bytes(data[at : at + 4], "big")
    return True  # a truncated file is the decoder's to report, and as small as the rest


def jpeg_scan_count(data: bytes) -> int:
    """Scans (SOS segments) in a JPEG, found by walking its marker segments, so an embedded EXIF
    thumbnail's scans are not counted and entropy-coded data is skipped at C speed."""
    i, n, scans = 2, len(data), 0
    while i + 4 <= n:
        if data[i] != 0xFF:
            return scans  # not a marker where one must be: let the decoder report the damage
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # end of image
            return scans
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):  # markers without a length
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker != 0xDA:
            continue
        scans += 1
        while True:  # entropy-coded data ends at the first 0xFF not followed by 0x00 or a restart marker
            i = data.find(b"\xff", i)
            if i < 0 or i + 1 >= n:
                return scans
            follower = data[i + 1]
            if follower == 0 or 0xD0 <= follower <= 0xD7:
                i += 2
                continue
            break
    return scans


def _check_header(img: Image.Image, fmt: str, limits: DecodeLimits, label: str) -> tuple[int, int]:
    width, height = img.size
    if width * height > limits.max_pixels:
        raise R3InputError(
            f"{label}: the image is {width}x{height} pixels; the limit is {limits.max_pixels} (max_image_pixels)"
        )
    if limits.pixels_left is not None and width * height > limits.pixels_left:
        raise R3InputError(
            f"{label}: the image is {width}x{height} pixels, more than the {limits.pixels_left} left of this "
            "request's pixel budget (max_request_pixels); send fewer or smaller images"
        )
    if fmt not in READABLE_FORMATS:
        raise R3InputError(f"{label}: unsupported image format {fmt or 'unknown'}; use PNG, JPEG or WebP")
    if width == 0 or height == 0:
        raise R3InputError(f"{label}: the image has zero size ({width}x{height})")
    return width, height


def normalise_bytes(data: bytes, limits: DecodeLimits, label: str, declared_mime: str | None = None) -> Normalised:
    """One image's bytes -> a checked data URL. Any failure, whatever the decoder raises, is an
    :class:`R3InputError` naming the image. ``declared_mime``: what a data URL said the bytes are."""
    check_size(len(data), limits, label)
    if data[:2] == b"\xff\xd8" and (scans := jpeg_scan_count(data)) > MAX_JPEG_SCANS:
        raise R3InputError(
            f"{label}: the JPEG has {scans} progressive scans; the limit is {MAX_JPEG_SCANS} "
            "(re-save it as a baseline JPEG)"
        )
    try:
        with warnings.catch_warnings():
            # Our own pixel limit (checked before any decode) is the guard; Pillow's would refuse photos
            # below it. Its global is switched off only in worker processes (normalise_in_worker): the
            # small PNGs checked in this process's threads are far below it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format or ""
                width, height = _check_header(img, fmt, limits, label)
                if declared_mime is not None and DATA_URL_MIME.get(fmt) != declared_mime:
                    raise R3InputError(f"{label}: data URL says {declared_mime} but the bytes are {fmt}")
                return _normalise_open(img, data, fmt, width, height, limits)
    except R3InputError:
        raise
    except Exception as exc:
        raise R3InputError(f"{label}: not a readable image ({type(exc).__name__}: {str(exc)[:200]})") from exc


def _normalise_open(
    img: Image.Image, data: bytes, fmt: str, width: int, height: int, limits: DecodeLimits
) -> Normalised:
    # Header-only facts first (n_frames of PNG/WebP comes from a header chunk; GIF's would need a scan
    # of every frame, and a GIF is re-encoded anyway).
    animated = fmt in ("PNG", "WEBP") and getattr(img, "n_frames", 1) > 1
    orientation = img.getexif().get(EXIF_ORIENTATION, 1) if fmt in ("JPEG", "MPO", "WEBP", "PNG") else 1
    too_large = max(width, height) > limits.max_side
    if fmt in PASS_THROUGH_FORMATS and not (animated or too_large or orientation != 1):
        img.load()  # decode fully (first frame only) so truncated files fail here, not in the model server
        url = f"data:{PASS_THROUGH_FORMATS[fmt]};base64,{base64.b64encode(data).decode('ascii')}"
        return Normalised(url, width, height, width * height)
    if too_large:
        # draft() inside thumbnail() makes libjpeg decode at reduced scale; other formats decode once
        # and are reduced by whole factors before the final resample.
        img.thumbnail((limits.max_side, limits.max_side), Image.Resampling.BICUBIC, reducing_gap=2.0)
    else:
        img.load()
    out: Image.Image = ImageOps.exif_transpose(img) if orientation != 1 else img
    as_jpeg = fmt in ("JPEG", "MPO")
    buffer = io.BytesIO()
    out.convert("RGB").save(buffer, format="JPEG" if as_jpeg else "PNG", quality=JPEG_QUALITY)
    mime = "image/jpeg" if as_jpeg else "image/png"
    url = f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"
    return Normalised(url, out.width, out.height, width * height)


def normalise_in_worker(data: bytes, limits: DecodeLimits, label: str, declared_mime: str | None = None) -> Normalised:
    """:func:`normalise_bytes` in a worker process, whose Pillow globals are ours to set."""
    Image.MAX_IMAGE_PIXELS = None
    return normalise_bytes(data, limits, label, declared_mime)


def normalise_data_url(url: str, limits: DecodeLimits, label: str) -> Normalised:
    """A data URL's bytes -> :func:`normalise_in_worker` (runs in a worker process)."""
    data, declared = decode_data_url(url, label)
    return normalise_in_worker(data, limits, label, declared_mime=declared)


def check_image_bytes(data: bytes, *, max_bytes: int, max_pixels: int, label: str) -> tuple[str, int, int]:
    """Decode fully (not just the header) so truncated files fail here: (format, width, height).
    For images this process made or received from its own backend; requests use normalise_bytes."""
    limits = DecodeLimits(max_bytes=max_bytes, max_pixels=max_pixels, max_side=2**31)
    check_size(len(data), limits, label)
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = _check_header(img, fmt, limits, label)
            img.load()
    except R3InputError:
        raise
    except Exception as exc:
        raise R3InputError(f"{label}: not a readable image ({type(exc).__name__}: {str(exc)[:200]})") from exc
    return fmt, width, height


def checked_png(data: bytes, max_bytes: int, max_pixels: int, label: str) -> tuple[bytes, int, int]:
    """A generated image, checked like an input one and stored as PNG: (png, width, height)."""
    fmt, width, height = check_image_bytes(data, max_bytes=max_bytes, max_pixels=max_pixels, label=label)
    if fmt != "PNG":  # the protocol says PNG; accept what decodes, store PNG
        with Image.open(io.BytesIO(data)) as img:
            buffer = io.BytesIO()
            img.convert("RGB").save(buffer, format="PNG")
            data = buffer.getvalue()
    return data, width, height
