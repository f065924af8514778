"""An edit's source image on the token-image server: checked from its header before it is decoded."""

from __future__ import annotations

import struct
import zlib

import pytest

from r3graph.serving.image_api import ApiError
from r3graph.serving.token_images import MAX_SOURCE_PIXELS, source_image
from tests.fakes import png_bytes


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height`` (what a decompression bomb looks like)."""
    data = bytearray(png_bytes(size=(1, 1)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_a_source_image_is_reduced_to_the_tokenizers_side() -> None:
    image = source_image(png_bytes("blue", size=(200, 100)), 64)
    assert image.size == (64, 64) and image.mode == "RGB" and image.getpixel((10, 10)) == (0, 0, 255)


@pytest.mark.parametrize(("width", "height"), [(4097, 4096), (12_000, 12_000), (2**31 - 1, 1)])
def test_a_source_image_over_the_pixel_cap_is_refused_from_its_header(width: int, height: int) -> None:
    assert width * height > MAX_SOURCE_PIXELS
    with pytest.raises(ApiError) as caught:
        source_image(png_claiming(width, height), 64)
    assert caught.value.status == 400 and caught.value.code in {"image_too_large", "unreadable_image"}
    if width * height < 2 * 89_478_485:  # under Pillow's own error limit: only our cap stops it
        assert caught.value.code == "image_too_large" and "4096x4096" in caught.value.message


def test_an_unreadable_source_image_is_a_400() -> None:
    with pytest.raises(ApiError) as caught:
        source_image(b"not an image", 64)
    assert (caught.value.status, caught.value.code) == (400, "unreadable_image")
