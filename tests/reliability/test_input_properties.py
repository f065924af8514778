"""Property tests over URLs, paths and image bytes: whatever a model writes, the answer is a checked
data URL or a typed error, never another exception, never a read outside ``image_root``, never a
connection to an address that was not checked.

DNS is faked: every name resolves to a documentation address (non-public), so no example can leave
the machine; numeric hosts are parsed locally.
"""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from r3graph import R3ValidationError
from r3graph.image_fetch import is_public, parse_remote_url
from r3graph.image_files import read_image_file
from r3graph.images import normalise_images
from tests.reliability.image_host import FakeDNS

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# -- URLs --------------------------------------------------------------------------------------------
host_text = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["127.0.0.1", "[::1]", "0", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "localhost",
                     "169.254.169.254", "[fe80::1%25lo]", "b\u00fccher.test", "\uff11\uff12\uff17.0.0.1", "a" * 64,
                     "xn--", "-a.test", "a..b", "[", "]", "@", "user@127.0.0.1", "127\u30020\u30020\u30021"]),
    st.from_regex(r"[a-z0-9.\-_]{1,80}", fullmatch=True),
)
urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https", "HTTP", "hTtPs"]),
    host_text,
    st.one_of(st.just(""), st.integers(-5, 70000).map(lambda p: f":{p}"), st.text(max_size=6).map(lambda p: f":{p}")),
    st.one_of(st.just("/x.png"), st.text(max_size=40).map(lambda p: "/" + p)),
)


class DocumentationDNS(FakeDNS):
    async def resolve(self, host: str, port: int) -> list[str]:
        self.queries.append(host)
        try:
            return await super().resolve(host, port)  # numeric: parsed locally
        except OSError:
            return ["192.0.2.7"]  # TEST-NET-1: not public, so never dialled


@given(url=urls)
@SETTINGS
def test_any_url_is_a_typed_refusal_and_never_a_connection(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("r3graph.image_fetch.resolve", DocumentationDNS().resolve)
    dialled: list[str] = []

    async def download(target: Any, address: str, *args: Any) -> bytes:
        dialled.append(address)
        raise AssertionError("dialled")

    monkeypatch.setattr("r3graph.image_fetch._download", download)
    with pytest.raises(R3ValidationError):
        asyncio.run(normalise_images([url], {"allow_remote_images": True}))
    assert dialled == []
    try:
        target = parse_remote_url(url, "images[0]")
    except R3ValidationError:
        return
    assert target.host.isascii() and target.host == target.host.lower() and 0 < target.port < 65536
    assert all(ord(ch) > 0x20 and ord(ch) != 0x7F for ch in target.target + target.host)


@given(address=st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)))
@settings(max_examples=300, deadline=None)
def test_private_addresses_are_never_public_in_any_spelling(address: str) -> None:
    import ipaddress

    ip = ipaddress.ip_address(address)
    mapped = ipaddress.IPv6Address(f"::ffff:{ip}") if ip.version == 4 else None
    if not ip.is_global or ip.is_multicast:
        assert not is_public(address)
    if mapped is not None:
        assert is_public(str(mapped)) == is_public(address)  # IPv4-mapped is judged as the IPv4 address


# -- paths under image_root ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tree() -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "root"
        (root / "sub").mkdir(parents=True)
        (root / "ok.png").write_bytes(b"INSIDE")
        (root / "sub" / "ok.png").write_bytes(b"INSIDE")
        (base / "secret.png").write_bytes(b"SECRET")
        (root / "out").symlink_to(base)
        (root / "in").symlink_to("sub")
        (root / "abs").symlink_to(root / "sub")
        (root / "loop").symlink_to("loop")
        os.mkfifo(root / "fifo")
        yield base


components = st.sampled_from(["..", ".", "", "ok.png", "sub", "out", "in", "abs", "loop", "fifo", "secret.png",
                              "\x00", "a" * 300, "~", "\udcff", "ok.png\n"])


@given(parts=st.lists(components, max_size=8), absolute=st.booleans())
@SETTINGS
def test_no_path_reads_outside_image_root(tree: Path, parts: list[str], absolute: bool) -> None:
    root = tree / "root"
    text = ("/".join([str(root), *parts]) if absolute else "/".join(parts))
    try:
        data = read_image_file(text, max_bytes=1024, root=str(root), label="images[0]")
    except R3ValidationError:
        return
    assert data == b"INSIDE"


# -- image bytes -------------------------------------------------------------------------------------------
def _encoded(format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((24, 16), 40).convert("RGB").save(buffer, format=format, **options)
    return buffer.getvalue()


SEEDS = [_encoded("PNG"), _encoded("JPEG"), _encoded("JPEG", progressive=True), _encoded("GIF"), _encoded("TIFF"),
         _encoded("WEBP"), _encoded("BMP")]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


@given(data=st.one_of(mutated(), st.binary(max_size=256)))
@SETTINGS
def test_any_bytes_give_a_data_url_or_a_typed_error(data: bytes) -> None:
    try:
        urls = asyncio.run(normalise_images([data]))
    except R3ValidationError:
        return
    assert urls[0].startswith(("data:image/png;base64,", "data:image/jpeg;base64,", "data:image/webp;base64,"))
