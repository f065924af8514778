"""The bad-input corpus in one parametrised test (listed in docs/bad-input.md).

Every case goes through the compiled graph (``ainvoke`` with the raw input and the raw context, as a
caller would pass them) and must fail fast with a typed :class:`R3ValidationError` subclass whose
message names the problem, before any model call. Inputs are built lazily (some are tens of MB).
"""

from __future__ import annotations

import base64
import io
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from PIL import Image

from r3graph import R3ConfigError, R3InputError, R3ValidationError, build_r3_graph
from tests.fakes import ScriptedChatModel, png_bytes

MB = 2**20


def _png(size: tuple[int, int] = (16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "blue").save(buffer, format="PNG")
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    data = bytearray(_png((1, 1)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def _data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def _file(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


def ok_images(tmp: Path) -> list[Any]:
    return [png_bytes()]


class Case(NamedTuple):
    id: str
    inputs: Callable[[Path], dict[str, Any]]
    context: Any
    error: type[R3ValidationError]
    message: str


def img(factory: Callable[[Path], Any]) -> Callable[[Path], dict[str, Any]]:
    return lambda tmp: {"instruction": "Describe.", "images": [factory(tmp)]}


def ins(instruction: Any) -> Callable[[Path], dict[str, Any]]:
    return lambda tmp: {"instruction": instruction, "images": [png_bytes()]}


def imgs(images: Callable[[Path], Any]) -> Callable[[Path], dict[str, Any]]:
    return lambda tmp: {"instruction": "Describe.", "images": images(tmp)}


GOOD = ins("Describe.")

CORPUS: list[Case] = [
    # -- the instruction ------------------------------------------------------------------------
    Case("instruction missing", lambda tmp: {"images": [png_bytes()]}, None, R3InputError, "non-empty string"),
    Case("instruction None", ins(None), None, R3InputError, "non-empty string, got NoneType"),
    Case("instruction int", ins(7), None, R3InputError, "non-empty string, got int"),
    Case("instruction bytes", ins(b"Describe."), None, R3InputError, "non-empty string, got bytes"),
    Case("instruction list", ins(["Describe."]), None, R3InputError, "non-empty string, got list"),
    Case("instruction blank", ins(" \n\t "), None, R3InputError, "non-empty string"),
    Case("instruction 8001 chars", ins("x" * 8001), None, R3InputError, "limit is 8000"),
    Case("instruction 1 MB", ins("x" * MB), None, R3InputError, "limit is 8000"),
    # -- the image list --------------------------------------------------------------------------
    Case("images missing", lambda tmp: {"instruction": "x"}, None, R3InputError, "images must be a list"),
    Case("images None", imgs(lambda tmp: None), None, R3InputError, "images must be a list"),
    Case("images a bare bytes", imgs(lambda tmp: png_bytes()), None, R3InputError, "images must be a list"),
    Case("images a bare path", imgs(lambda tmp: "/tmp/a.png"), None, R3InputError, "images must be a list"),
    Case("images a dict", imgs(lambda tmp: {"0": png_bytes()}), None, R3InputError, "images must be a list"),
    Case("images empty", imgs(lambda tmp: []), None, R3InputError, "1 to 8 images"),
    Case("images 9", imgs(lambda tmp: [png_bytes()] * 9), None, R3InputError, "1 to 8 images"),
    Case("images 10000", imgs(lambda tmp: [b"x"] * 10_000), None, R3InputError, "1 to 8 images"),
    # -- one image: types and encodings ------------------------------------------------------------
    Case("image None", img(lambda tmp: None), None, R3InputError, "unsupported image type NoneType"),
    Case("image float", img(lambda tmp: 3.14), None, R3InputError, "unsupported image type float"),
    Case("image nested list", img(lambda tmp: [png_bytes()]), None, R3InputError, "unsupported image type list"),
    Case("image zero bytes", img(lambda tmp: b""), None, R3InputError, "empty"),
    Case("image corrupt bytes", img(lambda tmp: b"not an image"), None, R3InputError, "not a readable image"),
    Case("image png signature only", img(lambda tmp: b"\x89PNG\r\n\x1a\n"), None, R3InputError,
         "not a readable image"),
    Case("image truncated png", img(lambda tmp: _png((64, 64))[:60]), None, R3InputError, "not a readable image"),
    Case("image gif header only", img(lambda tmp: b"GIF89a" + b"\x00" * 10), None, R3InputError,
         "not a readable image"),
    Case("image ICO (unsupported format)", img(lambda tmp: _ico()), None, R3InputError,
         "unsupported image format ICO"),
    # -- enormous images --------------------------------------------------------------------------
    Case("image 21 MB of bytes", img(lambda tmp: b"\x89PNG\r\n\x1a\n" + bytes(21 * MB)), None, R3InputError,
         "the limit is 20971520"),
    Case("image 21 MB data URL", img(lambda tmp: _data_url(bytes(21 * MB))), None, R3InputError,
         "the limit is 20971520"),
    Case("image 21 MB file", img(lambda tmp: _file(tmp, "big.png", bytes(21 * MB))), None, R3InputError,
         "larger than max_image_bytes"),
    Case("image header claims 100000x100000 px", img(lambda tmp: _png_claiming(100_000, 100_000)), None,
         R3InputError, "DecompressionBombError|the limit is 16777216"),
    Case("image header claims 2^31-1 x 1 px", img(lambda tmp: _png_claiming(2**31 - 1, 1)), None,
         R3InputError, "not a readable image|the limit is 16777216"),
    Case("image over a small pixel limit", img(lambda tmp: _png((100, 100))), {"max_image_pixels": 5000},
         R3InputError, "limit is 5000"),
    Case("PIL image over a small pixel limit", img(lambda tmp: Image.new("RGB", (100, 100))),
         {"max_image_pixels": 5000}, R3InputError, "limit is 5000"),
    # -- data URLs ----------------------------------------------------------------------------------
    Case("data url text/plain", img(lambda tmp: "data:text/plain;base64,aGk="), None, R3InputError, "MIME type"),
    Case("data url svg", img(lambda tmp: _data_url(b"<svg/>", "image/svg+xml")), None, R3InputError, "MIME type"),
    Case("data url says jpeg, bytes are png", img(lambda tmp: _data_url(png_bytes(), "image/jpeg")), None,
         R3InputError, "says image/jpeg"),
    Case("data url not base64", img(lambda tmp: "data:image/png,rawbytes"), None, R3InputError, "base64"),
    Case("data url bad payload", img(lambda tmp: "data:image/png;base64,@@@@"), None, R3InputError, "invalid"),
    # -- paths and URLs -------------------------------------------------------------------------------
    Case("path missing", img(lambda tmp: "/nonexistent/cat.png"), None, R3InputError, "no such image file"),
    Case("path is a folder", img(lambda tmp: str(tmp)), None, R3InputError, "no such image file"),
    Case("path empty string", img(lambda tmp: ""), None, R3InputError, "no such image file"),
    Case("path a text file", img(lambda tmp: _file(tmp, "notes.png", b"hello")), None, R3InputError,
         "not a readable image"),
    Case("path outside image_root", img(lambda tmp: "/etc/hostname"), {"image_root": "/nonexistent-root"},
         R3InputError, "outside the allowed image folder"),
    Case("path when paths are off", img(lambda tmp: _file(tmp, "ok.png", _png())), {"allow_file_paths": False},
         R3InputError, "file paths are not accepted"),
    Case("javascript: pseudo-URL", img(lambda tmp: "javascript:alert(1)"), None, R3InputError,
         "no such image file"),
    Case("file:// URL", img(lambda tmp: "file:///etc/passwd"), None, R3InputError, "unsupported URL scheme"),
    Case("ftp:// URL", img(lambda tmp: "ftp://example.com/a.png"), None, R3InputError, "unsupported URL scheme"),
    Case("https URL with remote off", img(lambda tmp: "https://example.com/a.png"), None, R3InputError,
         "remote image URLs are off"),
    Case("URL to loopback", img(lambda tmp: "http://127.0.0.1:9/x.png"), {"allow_remote_images": True},
         R3InputError, "non-public host"),
    Case("URL to cloud metadata", img(lambda tmp: "http://169.254.169.254/latest"), {"allow_remote_images": True},
         R3InputError, "non-public host"),
    Case("URL to private 10/8", img(lambda tmp: "http://10.1.2.3/x.png"), {"allow_remote_images": True},
         R3InputError, "non-public host"),
    Case("URL to ::1", img(lambda tmp: "http://[::1]/x.png"), {"allow_remote_images": True},
         R3InputError, "non-public host"),
    # -- malformed context objects ----------------------------------------------------------------------
    Case("context a string", GOOD, "fast", R3ConfigError, "context must be an R3Context or a dict"),
    Case("context an int", GOOD, 42, R3ConfigError, "context must be an R3Context or a dict"),
    Case("context a list", GOOD, [("max_rounds", 1)], R3ConfigError, "context must be an R3Context or a dict"),
    Case("context unknown field", GOOD, {"max_round": 2}, R3ConfigError, "max_round"),
    Case("max_rounds negative", GOOD, {"max_rounds": -1}, R3ConfigError, "max_rounds"),
    Case("max_rounds huge", GOOD, {"max_rounds": 10**9}, R3ConfigError, "max_rounds"),
    Case("max_rounds 2^63", GOOD, {"max_rounds": 2**63}, R3ConfigError, "max_rounds"),
    Case("max_rounds fractional", GOOD, {"max_rounds": 2.5}, R3ConfigError, "max_rounds"),
    Case("max_rounds a word", GOOD, {"max_rounds": "three"}, R3ConfigError, "max_rounds"),
    Case("max_rounds None", GOOD, {"max_rounds": None}, R3ConfigError, "max_rounds"),
    Case("num_questions 0", GOOD, {"num_questions": 0}, R3ConfigError, "num_questions"),
    Case("num_questions 1000", GOOD, {"num_questions": 1000}, R3ConfigError, "num_questions"),
    Case("reflect_passes 0", GOOD, {"reflect_passes": 0}, R3ConfigError, "reflect_passes"),
    Case("select unknown", GOOD, {"select": "worst"}, R3ConfigError, "select"),
    Case("call_timeout_s 0", GOOD, {"call_timeout_s": 0}, R3ConfigError, "call_timeout_s"),
    Case("call_timeout_s NaN", GOOD, {"call_timeout_s": float("nan")}, R3ConfigError, "call_timeout_s"),
    Case("call_timeout_s infinite", GOOD, {"call_timeout_s": float("inf")}, R3ConfigError, "call_timeout_s"),
    Case("run_timeout_s negative", GOOD, {"run_timeout_s": -5}, R3ConfigError, "run_timeout_s"),
    Case("sampling not a dict", GOOD, {"sampling": "hot"}, R3ConfigError, "sampling"),
    Case("sampling unknown stage", GOOD, {"sampling": {"dream": {}}}, R3ConfigError, "sampling.dream"),
    Case("sampling temperature 5", GOOD, {"sampling": {"reason": {"temperature": 5}}}, R3ConfigError,
         "sampling.reason.temperature"),
    Case("sampling max_tokens 0", GOOD, {"sampling": {"judge": {"max_tokens": 0}}}, R3ConfigError,
         "sampling.judge.max_tokens"),
    Case("sampling unknown key", GOOD, {"sampling": {"reason": {"logit_bias": {}}}}, R3ConfigError,
         "sampling.reason.logit_bias"),
    Case("max_image_bytes 0", GOOD, {"max_image_bytes": 0}, R3ConfigError, "max_image_bytes"),
    Case("max_image_pixels over 2^28", GOOD, {"max_image_pixels": 2**30}, R3ConfigError, "max_image_pixels"),
    Case("capture_content a word", GOOD, {"capture_content": "maybe"}, R3ConfigError, "capture_content"),
    Case("image_root not a string", GOOD, {"image_root": 5}, R3ConfigError, "image_root"),
    Case("reflect unknown name", GOOD, {"reflect": "telepathy"}, R3ConfigError, "unknown reflect strategy"),
    Case("reflect a number", GOOD, {"reflect": 42}, R3ConfigError, "reflect must be a strategy name"),
    Case("pack unknown", GOOD, {"pack": "klingon"}, R3ConfigError, "unknown prompt pack"),
    Case("pack path traversal", GOOD, {"pack": "../../../../etc/passwd"}, R3ConfigError, "unknown prompt pack"),
]


def _ico() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="ICO")
    return buffer.getvalue()


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
async def test_bad_input_fails_typed_before_any_model_call(case: Case, tmp_path: Path) -> None:
    chat = ScriptedChatModel(script=lambda prompt: "unused")
    graph: Any = build_r3_graph(chat).compile()
    inputs = case.inputs(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(case.error, match=case.message) as caught:
        await graph.ainvoke(inputs, context=case.context)
    assert time.monotonic() - t0 < 10
    assert isinstance(caught.value, R3ValidationError) and isinstance(caught.value, ValueError)
    assert chat.calls == []  # nothing reached the model


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    assert len(CORPUS) >= 30
    assert len({c.id for c in CORPUS}) == len(CORPUS)
