"""Small PNGs are checked in a thread of this process, everything else in a worker process.

Why the split is safe and where it lies: r3graph/image_decode.py (SMALL_PNG_BYTES, is_small_png)."""

from __future__ import annotations

import base64
import io
import random
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from r3graph import R3InputError
from r3graph import images as images_module
from r3graph.image_decode import SMALL_PNG_BYTES, SMALL_PNG_PIXELS, is_small_png
from r3graph.images import normalise_images
from tests.fakes import png_bytes, text_packed_png


@pytest.fixture
def worker_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts trips to the worker pool (and still makes them)."""
    calls: list[str] = []
    real = images_module.run_in_worker

    async def counting(function: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(function.__name__)
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(images_module, "run_in_worker", counting)
    return calls


def _noise_png(side: int) -> bytes:
    image = Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_small_png_is_checked_without_a_worker(worker_calls: list[str]) -> None:
    data = png_bytes(size=(64, 64))
    as_url = "data:image/png;base64," + base64.b64encode(data).decode()
    urls = await normalise_images([data, as_url])
    assert urls == [as_url, as_url] and worker_calls == []


async def test_larger_pngs_and_other_formats_still_go_to_a_worker(worker_calls: list[str]) -> None:
    big = png_bytes(size=(257, 256))  # one column over SMALL_PNG_PIXELS
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, format="JPEG")
    heavy = _noise_png(200)  # few pixels, but over SMALL_PNG_BYTES
    assert len(heavy) > SMALL_PNG_BYTES and 200 * 200 <= SMALL_PNG_PIXELS
    await normalise_images([big, buffer.getvalue(), heavy])
    assert len(worker_calls) == 3


async def test_compressed_text_chunks_send_a_small_png_to_a_worker(worker_calls: list[str]) -> None:
    packed = text_packed_png()
    assert len(packed) <= SMALL_PNG_BYTES and not is_small_png(packed)
    assert is_small_png(png_bytes(size=(16, 16)))
    await normalise_images([packed])  # accepted, in a worker whose time budget could cut it
    assert worker_calls == ["normalise_in_worker"]


def test_only_a_real_png_header_within_both_limits_counts_as_small() -> None:
    def png_header(width: int, height: int, chunk: bytes = b"IHDR") -> bytes:
        body = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + body
                + struct.pack(">I", zlib.crc32(chunk + body)))

    assert is_small_png(png_header(256, 256))
    assert not is_small_png(png_header(257, 256))
    assert not is_small_png(png_header(65535, 1 << 20))  # a header claiming a huge image
    assert not is_small_png(png_header(0, 10))
    assert not is_small_png(png_header(8, 8, chunk=b"tEXt"))  # IHDR must come first
    assert not is_small_png(png_header(8, 8)[:20])  # truncated header
    assert not is_small_png(b"\xff\xd8\xff" + png_header(8, 8)[3:])  # not PNG


async def test_the_thread_path_leaves_pillows_own_bomb_guard_alone() -> None:
    """Worker processes switch Pillow's global pixel limit off (our own limit guards them); the
    caller's process must keep it, or every other image its code opens loses the guard."""
    before = Image.MAX_IMAGE_PIXELS
    await normalise_images([png_bytes(size=(64, 64))])
    assert Image.MAX_IMAGE_PIXELS == before and before is not None


@pytest.mark.parametrize("bad", [
    b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 8, 8) + b"\x08\x02\x00\x00\x00"
    + b"\x00\x00\x00\x00",  # a small header with a wrong CRC and no image data
    png_bytes(size=(64, 64))[:-30],  # cut short inside the image data
])
async def test_a_broken_small_png_is_a_typed_error(bad: bytes, worker_calls: list[str]) -> None:
    with pytest.raises(R3InputError, match=r"images\[0\]"):
        await normalise_images([bad])
    assert worker_calls == []


async def test_a_small_png_sent_as_jpeg_is_refused() -> None:
    url = "data:image/jpeg;base64," + base64.b64encode(png_bytes(size=(16, 16))).decode()
    with pytest.raises(R3InputError, match="says image/jpeg but the bytes are PNG"):
        await normalise_images([url])
