"""Corpus: valid inputs that must be accepted (and reach the model, scaled to what it needs).

Every one of these was refused at some point, or is what ordinary callers send: phone photos (large,
rotated by EXIF, MPO), data URLs written by other tools (``;charset=``, base64 wrapped at 76 columns,
upper case), animated images, odd pixel modes, symlinks that stay inside ``image_root``.
"""

from __future__ import annotations

import base64
import io
import os
import textwrap

from PIL import Image, ImageDraw

from tests.fakes import png_bytes, text_packed_png
from tests.reliability.corpus import REMOTE_PRIVATE_OK, Case, Env
from tests.reliability.corpus import img as image
from tests.reliability.corpus.locations import inside, named, root_ctx, rooted


def photo(size: tuple[int, int], **save: object) -> bytes:
    """A JPEG like a camera's: large, smooth regions and edges (fast to make, realistic to decode)."""
    picture = Image.new("RGB", size, (90, 140, 200))
    draw = ImageDraw.Draw(picture)
    w, h = size
    draw.rectangle((w // 5, h // 3, w // 2, h - h // 6), fill=(200, 60, 40))
    draw.ellipse((w // 2, h // 8, w - w // 8, h // 2), fill=(240, 220, 90))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85, **save)
    return buffer.getvalue()


def rotated_photo() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": how phones store portrait shots
    return photo((640, 480), exif=exif.tobytes())


def mpo() -> bytes:
    buffer = io.BytesIO()
    left, right = Image.new("RGB", (64, 48), "red"), Image.new("RGB", (64, 48), "blue")
    left.save(buffer, format="MPO", save_all=True, append_images=[right])
    return buffer.getvalue()


def animated(format: str, frames: int, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    first, *rest = [Image.new("RGB", size, (i * 7 % 255, 0, 0)) for i in range(frames)]
    first.save(buffer, format=format, save_all=True, append_images=rest)
    return buffer.getvalue()


def mode(name: str, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(name, (16, 16)).save(buffer, format=format)
    return buffer.getvalue()


def palette_with_transparency() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (16, 16), 3).save(buffer, format="PNG", transparency=3)
    return buffer.getvalue()


def wrapped_data_url(raw: bytes) -> str:
    body = base64.b64encode(raw).decode()
    return "data:image/png;base64," + "\r\n".join(textwrap.wrap(body, 76))


def spaced_file(env: Env) -> str:
    path = env.tmp / "holiday photo \u00e9t\u00e9 \U0001f305.png"
    path.write_bytes(png_bytes())
    return str(path)


def link_inside(env: Env) -> str:
    link = os.path.join(inside(env), "sub", "in.png")
    if not os.path.lexists(link):
        os.symlink("../ok.png", link)
    return link


OK = None  # accepted
CASES: list[Case] = [
    Case("ok: a 20-megapixel phone photo", "accepted", image(lambda env: photo((5472, 3648))), None, OK, ""),
    Case("ok: a 50-megapixel photo", "accepted", image(lambda env: photo((8160, 6120))), None, OK, ""),
    Case("ok: a progressive phone photo", "accepted", image(lambda env: photo((4000, 3000), progressive=True)), None,
         OK, ""),
    Case("ok: an EXIF-rotated portrait photo", "accepted", image(lambda env: rotated_photo()), None, OK, ""),
    Case("ok: an MPO JPEG (stereo/depth phone photo)", "accepted", image(lambda env: mpo()), None, OK, ""),
    Case("ok: an MPO JPEG as a data URL", "accepted",
         image(lambda env: "data:image/jpeg;base64," + base64.b64encode(mpo()).decode()), None, OK, ""),
    Case("ok: data URL with ;charset=", "accepted",
         image(lambda env: "data:image/png;charset=utf-8;base64," + base64.b64encode(png_bytes()).decode()), None,
         OK, ""),
    Case("ok: data URL wrapped at 76 columns", "accepted", image(lambda env: wrapped_data_url(png_bytes("red",
         (64, 64)))), None, OK, ""),
    Case("ok: data URL in upper case", "accepted",
         image(lambda env: "DATA:IMAGE/PNG;BASE64," + base64.b64encode(png_bytes()).decode()), None, OK, ""),
    Case("ok: an animated GIF (first frame)", "accepted", image(lambda env: animated("GIF", 60, (400, 300))), None,
         OK, ""),
    Case("ok: an animated PNG (first frame)", "accepted", image(lambda env: animated("PNG", 30, (200, 150))), None,
         OK, ""),
    Case("ok: an animated WebP (first frame)", "accepted", image(lambda env: animated("WEBP", 10, (200, 150))), None,
         OK, ""),
    Case("ok: a 16-bit greyscale PNG", "accepted", image(lambda env: mode("I;16")), None, OK, ""),
    Case("ok: a small PNG whose zTXt chunks inflate to 60 MB (checked in a worker, not a thread)", "accepted",
         image(lambda env: text_packed_png()), None, OK, ""),
    Case("ok: a small plain PNG (checked in a thread)", "accepted", image(lambda env: png_bytes(size=(64, 64))),
         None, OK, ""),
    Case("ok: a CMYK JPEG", "accepted", image(lambda env: mode("CMYK", "JPEG")), None, OK, ""),
    Case("ok: a palette PNG with transparency", "accepted", image(lambda env: palette_with_transparency()),
         None, OK, ""),
    Case("ok: a TIFF", "accepted", image(lambda env: mode("RGB", "TIFF")), None, OK, ""),
    Case("ok: a BMP", "accepted", image(lambda env: mode("RGB", "BMP")), None, OK, ""),
    Case("ok: a large in-memory PIL image", "accepted", image(lambda env: Image.new("RGB", (5000, 4000), "teal")),
         None, OK, ""),
    Case("ok: bytearray", "accepted", image(lambda env: bytearray(png_bytes())), None, OK, ""),
    Case("ok: memoryview", "accepted", image(lambda env: memoryview(png_bytes())), None, OK, ""),
    Case("ok: a path with spaces, accents and an emoji", "accepted", image(spaced_file), None, OK, ""),
    Case("ok: a path inside image_root", "accepted", image(rooted("ok.png")), root_ctx, OK, ""),
    Case("ok: a symlink that stays inside image_root", "accepted", image(link_inside), root_ctx, OK, ""),
    Case("ok: sub/.. inside image_root", "accepted", image(rooted("sub/../ok.png")), root_ctx, OK, ""),
    Case("ok: an instruction with emoji and a NUL", "accepted",
         lambda env: {"instruction": "Describe \U0001f600 \x00 this.", "images": [png_bytes()]}, None, OK, ""),
    Case("ok: a remote image by name, connected to the checked address", "accepted", image(named("/ok.png")),
         REMOTE_PRIVATE_OK, OK, ""),
]
