"""Corpus: the instruction, the image list, and the bytes of one image (types, encodings, sizes, bombs)."""

from __future__ import annotations

import base64
import io
import struct
import zlib

from PIL import Image

from r3graph import R3InputError
from tests.fakes import png_bytes
from tests.reliability.corpus import Case, Env, imgs, ins
from tests.reliability.corpus import img as image

MB = 2**20


def png(size: tuple[int, int] = (16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "blue").save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    data = bytearray(png((1, 1)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def encoded(format: str, size: tuple[int, int] = (16, 16), **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 64).convert("RGB").save(buffer, format=format, **options)
    return buffer.getvalue()


def jpeg_with_scans(extra_scans: int) -> bytes:
    """A progressive JPEG whose last scan is repeated: libjpeg decodes every scan, each a full pass
    over the image (the stall the issue measured at ~25 s for 1 MiB)."""
    data = encoded("JPEG", (64, 64), progressive=True, quality=90)
    last, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:end] + data[last:end] * extra_scans + b"\xff\xd9"


def tiff_with_text_strip_offsets() -> bytes:
    """StripOffsets (tag 273) typed ASCII: Pillow raises TypeError from inside its TIFF reader."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="TIFF")
    data = bytearray(buffer.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    for entry in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        at = ifd + 2 + 12 * entry
        if struct.unpack("<H", data[at : at + 2])[0] == 273:
            struct.pack_into("<HHII", data, at, 273, 2, 1, 0)
    return bytes(data)


def gif_frames(frames: int, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    first, *rest = [Image.new("P", size, i % 255) for i in range(frames)]
    first.save(buffer, format="GIF", save_all=True, append_images=rest)
    return buffer.getvalue()


def ico() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="ICO")
    return buffer.getvalue()


def eps() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n0 0 moveto 16 16 lineto stroke\nshowpage\n"


def big_file(env: Env) -> str:
    path = env.tmp / "big.png"
    path.write_bytes(bytes(21 * MB))
    return str(path)


E = R3InputError
CASES: list[Case] = [
    # -- the instruction ------------------------------------------------------------------------
    Case("instruction missing", "instruction", lambda env: {"images": [png_bytes()]}, None, E, "non-empty string"),
    Case("instruction None", "instruction", ins(None), None, E, "non-empty string, got NoneType"),
    Case("instruction int", "instruction", ins(7), None, E, "non-empty string, got int"),
    Case("instruction bytes", "instruction", ins(b"Describe."), None, E, "non-empty string, got bytes"),
    Case("instruction list", "instruction", ins(["Describe."]), None, E, "non-empty string, got list"),
    Case("instruction blank", "instruction", ins(" \n\t "), None, E, "non-empty string"),
    Case("instruction 8001 chars", "instruction", ins("x" * 8001), None, E, "limit is 8000"),
    Case("instruction 1 MB", "instruction", ins("x" * MB), None, E, "limit is 8000"),
    Case("instruction with a lone surrogate", "instruction", ins("Describe \ud800 this."), None, E,
         "unpaired surrogate"),
    Case("instruction with a lone low surrogate at the end", "instruction", ins("Describe.\udfff"), None, E,
         "unpaired surrogate"),
    # -- the image list --------------------------------------------------------------------------
    Case("images missing", "image list", lambda env: {"instruction": "x"}, None, E, "images must be a list"),
    Case("images None", "image list", imgs(lambda env: None), None, E, "images must be a list"),
    Case("images a bare bytes", "image list", imgs(lambda env: png_bytes()), None, E, "images must be a list"),
    Case("images a bare path", "image list", imgs(lambda env: "/tmp/a.png"), None, E, "images must be a list"),
    Case("images a dict", "image list", imgs(lambda env: {"0": png_bytes()}), None, E, "images must be a list"),
    Case("images empty", "image list", imgs(lambda env: []), None, E, "1 to 8 images"),
    Case("images 9", "image list", imgs(lambda env: [png_bytes()] * 9), None, E, "1 to 8 images"),
    Case("images 10000", "image list", imgs(lambda env: [b"x"] * 10_000), None, E, "1 to 8 images"),
    # -- one image: types and encodings ------------------------------------------------------------
    Case("image None", "image type", image(lambda env: None), None, E, "unsupported image type NoneType"),
    Case("image float", "image type", image(lambda env: 3.14), None, E, "unsupported image type float"),
    Case("image nested list", "image type", image(lambda env: [png_bytes()]), None, E,
         "unsupported image type list"),
    Case("image zero bytes", "image bytes", image(lambda env: b""), None, E, "empty"),
    Case("image corrupt bytes", "image bytes", image(lambda env: b"not an image"), None, E, "not a readable image"),
    Case("image png signature only", "image bytes", image(lambda env: b"\x89PNG\r\n\x1a\n"), None, E,
         "not a readable image"),
    Case("image truncated png", "image bytes", image(lambda env: png((64, 64))[:60]), None, E,
         "not a readable image"),
    Case("image truncated jpeg", "image bytes", image(lambda env: encoded("JPEG", (64, 64))[:300]), None, E,
         "not a readable image"),
    Case("image gif header only", "image bytes", image(lambda env: b"GIF89a" + b"\x00" * 10), None, E,
         "not a readable image"),
    Case("image ICO (unsupported format)", "image bytes", image(lambda env: ico()), None, E,
         "unsupported image format ICO"),
    Case("image EPS (would run Ghostscript)", "image bytes", image(lambda env: eps()), None, E,
         "unsupported image format EPS|not a readable image"),
    Case("image SVG bytes", "image bytes", image(lambda env: b"<svg xmlns='http://www.w3.org/2000/svg'/>"), None,
         E, "not a readable image"),
    Case("image TIFF with StripOffsets typed as text", "image bytes", image(lambda env: tiff_with_text_strip_offsets()),
         None, E, "not a readable image \\(TypeError"),
    # -- enormous or slow images ------------------------------------------------------------------
    Case("image 21 MB of bytes", "image size", image(lambda env: b"\x89PNG\r\n\x1a\n" + bytes(21 * MB)), None, E,
         "the limit is 20971520"),
    Case("image 21 MB data URL", "image size", image(lambda env: data_url(bytes(21 * MB))), None, E,
         "the limit is 20971520"),
    Case("image 21 MB file", "image size", image(big_file), None, E, "larger than max_image_bytes"),
    Case("image header claims 100000x100000 px", "image size", image(lambda env: png_claiming(100_000, 100_000)),
         None, E, "the limit is 134217728 \\(max_image_pixels\\)"),
    Case("image header claims 2^31-1 x 1 px", "image size", image(lambda env: png_claiming(2**31 - 1, 1)), None, E,
         "the limit is 134217728 \\(max_image_pixels\\)"),
    Case("image over a small pixel limit", "image size", image(lambda env: png((100, 100))),
         {"max_image_pixels": 5000}, E, "limit is 5000"),
    Case("PIL image over a small pixel limit", "image size", image(lambda env: Image.new("RGB", (100, 100))),
         {"max_image_pixels": 5000}, E, "limit is 5000"),
    Case("images over the request's pixel budget", "image size",
         imgs(lambda env: [png((100, 100)), png((100, 100))]), {"max_request_pixels": 15000}, E,
         "max_request_pixels"),
    Case("progressive JPEG with 3000 scans", "decode budget", image(lambda env: jpeg_with_scans(3000)), None, E,
         "3010 progressive scans; the limit is 64"),
    Case("progressive JPEG with 3000 scans, data URL", "decode budget",
         image(lambda env: data_url(jpeg_with_scans(3000), "image/jpeg")), None, E, "progressive scans"),
    Case("decode over a tiny time budget", "decode budget", image(lambda env: encoded("PNG", (1500, 1500))),
         {"image_timeout_s": 0.001}, E, "took longer than|no time left"),
    # -- data URLs ----------------------------------------------------------------------------------
    Case("data url text/plain", "data URL", image(lambda env: "data:text/plain;base64,aGk="), None, E, "MIME type"),
    Case("data url svg", "data URL", image(lambda env: data_url(b"<svg/>", "image/svg+xml")), None, E, "MIME type"),
    Case("data url says jpeg, bytes are png", "data URL", image(lambda env: data_url(png_bytes(), "image/jpeg")),
         None, E, "says image/jpeg"),
    Case("data url not base64", "data URL", image(lambda env: "data:image/png,rawbytes"), None, E, "base64"),
    Case("data url bad payload", "data URL", image(lambda env: "data:image/png;base64,@@@@"), None, E, "invalid"),
    Case("data url empty payload", "data URL", image(lambda env: "data:image/png;base64,"), None, E, "empty"),
    Case("data url without a MIME type", "data URL", image(lambda env: "data:;base64,aGk="), None, E,
         "MIME type '\\(none\\)'"),
    Case("data url base64 not last", "data URL", image(lambda env: "data:image/png;base64;x=y,aGk="), None, E,
         "must look like"),
]
