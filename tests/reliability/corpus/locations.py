"""Corpus: where an image comes from, as an agent's model might write it: file paths and URLs.

Remote cases resolve names through the fake DNS (``tests.reliability.image_host.CORPUS_DNS``) and
connect, when they connect at all, only to the hostile image host on 127.0.0.1.
"""

from __future__ import annotations

import os
import socket

from r3graph import R3InputError
from tests.fakes import png_bytes
from tests.reliability.corpus import REMOTE, REMOTE_PRIVATE_OK, Case, Env
from tests.reliability.corpus import img as image

E = R3InputError


def inside(env: Env) -> str:
    """The image_root folder of the path cases: one good image, links in and out, a FIFO, a socket."""
    root = env.tmp / "root"
    if not root.exists():
        root.mkdir(parents=True)
        (root / "ok.png").write_bytes(png_bytes())
        (root / "sub").mkdir()
        (env.tmp / "secret.png").write_bytes(png_bytes("black"))
        (root / "out.png").symlink_to(env.tmp / "secret.png")
        (root / "sub" / "up.png").symlink_to("../../secret.png")
        (root / "loop.png").symlink_to("loop.png")
        (root / "a").symlink_to("b")
        (root / "b").symlink_to("a")
        (root / "dirlink").symlink_to(env.tmp)
        os.mkfifo(root / "fifo.png")
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(root / "sock.png"))
        sock.close()
    return str(root)


def rooted(name: str) -> object:
    return lambda env: os.path.join(inside(env), name)


def root_ctx(env: Env) -> dict[str, str]:
    """{'image_root': '<tmp>/root'}"""
    return {"image_root": inside(env)}


def fifo(env: Env) -> str:
    return os.path.join(inside(env), "fifo.png")


def url(path: str) -> object:
    return lambda env: f"{env.host}{path}"


def named(path: str) -> object:
    """The image host under the fake name imghost.test (resolves to 127.0.0.1)."""
    return lambda env: f"http://imghost.test:{env.port}{path}"


CASES: list[Case] = [
    # -- paths -------------------------------------------------------------------------------------
    Case("path missing", "path", image(lambda env: "/nonexistent/cat.png"), None, E, "no such image file"),
    Case("path is a folder", "path", image(lambda env: str(env.tmp)), None, E, "no such image file"),
    Case("path empty string", "path", image(lambda env: ""), None, E, "no such image file"),
    Case("path a text file", "path", image(lambda env: _write(env, "notes.png", b"hello")), None, E,
         "not a readable image"),
    Case("path with a NUL byte", "path", image(lambda env: "ok.png\x00.jpg"), None, E, "NUL byte"),
    Case("path with a NUL byte under image_root", "path", image(lambda env: rooted("ok\x00.png")(env)), root_ctx, E,
         "NUL byte"),
    Case("path with a 300-byte name", "path", image(lambda env: "/tmp/" + "a" * 300 + ".png"), None, E,
         "longer than 255 bytes"),
    Case("path 5000 bytes long", "path", image(lambda env: "/tmp/" + "a/" * 2500 + "x.png"), None, E,
         "the limit is 4096"),
    Case("path with an unencodable surrogate", "path", image(lambda env: "/tmp/\udcff\ud800.png"), None, E,
         "cannot be encoded as a file name"),
    Case("path a FIFO (would block a read)", "path", image(fifo), None, E, "not a regular file"),
    Case("path a FIFO under image_root", "path", image(fifo), root_ctx, E, "not a regular file"),
    Case("path a UNIX socket", "path", image(rooted("sock.png")), None, E, "no such image file|not a regular file"),
    Case("path /dev/zero (endless device)", "path", image(lambda env: "/dev/zero"), None, E, "not a regular file"),
    Case("path /proc/self/environ", "path", image(lambda env: "/proc/self/environ"), None, E,
         "not a readable image|empty"),
    Case("path a symlink loop", "path", image(rooted("loop.png")), None, E, "loop of symbolic links"),
    Case("path a symlink loop under image_root", "path", image(rooted("loop.png")), root_ctx, E,
         "loop of symbolic links"),
    Case("path a two-link cycle under image_root", "path", image(rooted("a")), root_ctx, E, "loop of symbolic links"),
    Case("path outside image_root", "image_root", image(lambda env: "/etc/hostname"),
         {"image_root": "/nonexistent-root"}, E, "outside the allowed image folder"),
    Case("path .. out of image_root", "image_root", image(rooted("../secret.png")), root_ctx, E,
         "outside the allowed image folder"),
    Case("path through sub/../.. out of image_root", "image_root", image(rooted("sub/../../secret.png")), root_ctx,
         E, "outside the allowed image folder"),
    Case("path symlink to outside image_root", "image_root", image(rooted("out.png")), root_ctx, E,
         "outside the allowed image folder"),
    Case("path relative symlink climbing out of image_root", "image_root", image(rooted("sub/up.png")), root_ctx,
         E, "outside the allowed image folder"),
    Case("path through a symlinked folder out of image_root", "image_root", image(rooted("dirlink/secret.png")),
         root_ctx, E, "outside the allowed image folder"),
    Case("path ~ expansion out of image_root", "image_root", image(lambda env: "~/.ssh/id_rsa"), root_ctx, E,
         "outside the allowed image folder"),
    Case("path when paths are off", "path", image(lambda env: _write(env, "ok.png", png_bytes())),
         {"allow_file_paths": False}, E, "file paths are not accepted"),
    Case("javascript: pseudo-URL", "path", image(lambda env: "javascript:alert(1)"), None, E, "no such image file"),
    Case("file:// URL", "URL", image(lambda env: "file:///etc/passwd"), None, E, "unsupported URL scheme"),
    Case("ftp:// URL", "URL", image(lambda env: "ftp://example.com/a.png"), None, E, "unsupported URL scheme"),
    Case("gopher:// URL", "URL", image(lambda env: "gopher://127.0.0.1:6379/_INFO"), None, E,
         "unsupported URL scheme"),
    # -- URLs: malformed -----------------------------------------------------------------------------
    Case("https URL with remote off", "URL", image(lambda env: "https://example.com/a.png"), None, E,
         "remote image URLs are off"),
    Case("URL with an unterminated IPv6 bracket", "URL", image(lambda env: "http://[::1/x.png"), REMOTE, E,
         "malformed URL"),
    Case("URL with port 99999", "URL", image(lambda env: "http://example.com:99999/x.png"), REMOTE, E,
         "malformed URL.*Port out of range"),
    Case("URL with port -1", "URL", image(lambda env: "http://example.com:-1/x.png"), REMOTE, E, "malformed URL"),
    Case("URL with port 0", "URL", image(lambda env: "http://example.com:0/x.png"), REMOTE, E, "port 0"),
    Case("URL with a 64-character DNS label", "URL", image(lambda env: f"http://{'a' * 64}.com/x.png"), REMOTE, E,
         "too long"),
    Case("URL with a 300-character host", "URL", image(lambda env: "http://" + "a." * 150 + "com/x.png"), REMOTE,
         E, "too long"),
    Case("URL with a newline in the host", "URL", image(lambda env: "http://exa\nmple.com/x.png"), REMOTE, E,
         "control characters"),
    Case("URL with a space", "URL", image(lambda env: "http://example.com/a b.png"), REMOTE, E,
         "control characters"),
    Case("URL with CRLF header injection", "URL", image(lambda env: "http://example.com/x\r\nHost: 127.0.0.1"),
         REMOTE, E, "control characters"),
    Case("URL with credentials", "URL", image(lambda env: "http://user:pw@example.com/x.png"), REMOTE, E,
         "credentials"),
    Case("URL with no host", "URL", image(lambda env: "http:///x.png"), REMOTE, E, "no host"),
    Case("URL with an invalid international name", "URL", image(lambda env: "http://a\u200db.test/x.png"), REMOTE,
         E, "not a valid internationalised name"),
    Case("URL with a host DNS cannot have", "URL", image(lambda env: "http://exa$mple.com/x.png"), REMOTE, E,
         "characters a DNS name cannot have"),
    # -- URLs: private destinations --------------------------------------------------------------------
    Case("URL to loopback", "private host", image(lambda env: "http://127.0.0.1:9/x.png"), REMOTE, E,
         "non-public host"),
    Case("URL to cloud metadata", "private host", image(lambda env: "http://169.254.169.254/latest"), REMOTE, E,
         "non-public host"),
    Case("URL to private 10/8", "private host", image(lambda env: "http://10.1.2.3/x.png"), REMOTE, E,
         "non-public host"),
    Case("URL to ::1", "private host", image(lambda env: "http://[::1]/x.png"), REMOTE, E, "non-public host"),
    Case("URL to 0.0.0.0 as '0'", "private host", image(lambda env: "http://0/x.png"), REMOTE, E, "non-public host"),
    Case("URL to loopback as a decimal number", "private host", image(lambda env: "http://2130706433/x.png"), REMOTE,
         E, "non-public host"),
    Case("URL to loopback in hex dotted form", "private host", image(lambda env: "http://0x7f.1/x.png"), REMOTE, E,
         "non-public host"),
    Case("URL to IPv4-mapped IPv6 loopback", "private host", image(lambda env: "http://[::ffff:127.0.0.1]/x.png"),
         REMOTE, E, "non-public host"),
    Case("URL to a link-local IPv6 with zone", "private host", image(lambda env: "http://[fe80::1%25eth0]/x.png"),
         REMOTE, E, "non-public host"),
    Case("URL to loopback in full-width digits", "private host",
         image(lambda env: "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/x.png"), REMOTE, E,
         "non-public host '127.0.0.1'"),
    Case("URL to a name that resolves to loopback", "private host", image(lambda env: "http://loopback.test/x.png"),
         REMOTE, E, "non-public host 'loopback.test'"),
    Case("URL to a name answering public and loopback (rebinding)", "private host",
         image(lambda env: "http://rebind.test/x.png"), REMOTE, E, "resolves to 127.0.0.1"),
    Case("URL to a name resolving to the metadata address", "private host",
         image(lambda env: "http://metadata.test/x.png"), REMOTE, E, "non-public host"),
    Case("URL to a name resolving to IPv4-mapped loopback", "private host",
         image(lambda env: "http://mapped.test/x.png"), REMOTE, E, "non-public host"),
    Case("URL to a name resolving to NAT64 of 10.0.0.1", "private host", image(lambda env: "http://nat64.test/x"),
         REMOTE, E, "non-public host"),
    Case("URL to an international name resolving to loopback", "private host",
         image(lambda env: "http://b\u00fccher.test/x.png"), REMOTE, E, "non-public host 'xn--bcher-kva.test'"),
    Case("URL to loopback, scheme in upper case", "private host", image(lambda env: "HTTP://127.0.0.1/x.png"),
         REMOTE, E, "non-public host"),
    Case("URL to loopback with ideographic dots", "private host",
         image(lambda env: "http://127\u30020\u30020\u30021/x.png"), REMOTE, E, "non-public host '127.0.0.1'"),
    Case("URL to loopback behind a fragment", "private host", image(lambda env: "http://127.0.0.1#@example.com/"),
         REMOTE, E, "non-public host"),
    Case("URL to loopback behind a backslash", "private host",
         image(lambda env: "http://example.com\\@127.0.0.1/x.png"), REMOTE, E, "credentials|cannot have"),
    Case("URL to loopback behind userinfo", "private host", image(lambda env: "http://example.com@127.0.0.1/"),
         REMOTE, E, "credentials"),
    Case("URL to carrier-grade NAT 100.64/10", "private host", image(lambda env: "http://100.64.0.1/x.png"),
         REMOTE, E, "non-public host"),
    Case("URL to IPv6 unique-local fd00::1", "private host", image(lambda env: "http://[fd00::1]/x.png"), REMOTE,
         E, "non-public host"),
    Case("URL to multicast 224.0.0.1", "private host", image(lambda env: "http://224.0.0.1/x.png"), REMOTE, E,
         "non-public host"),
    Case("URL to broadcast 255.255.255.255", "private host", image(lambda env: "http://255.255.255.255/x.png"),
         REMOTE, E, "non-public host"),
    Case("URL to https on loopback", "private host", image(lambda env: "https://127.0.0.1/x.png"), REMOTE, E,
         "non-public host"),
    Case("URL 10000 characters long", "URL", image(lambda env: "http://example.com/" + "a" * 10000), REMOTE, E,
         "URL is 10019 characters"),
    Case("URL to a name that does not resolve", "URL", image(lambda env: "http://nxdomain.test/x.png"), REMOTE, E,
         "cannot resolve host"),
    # -- URLs: hostile servers (on 127.0.0.1, reached with private hosts allowed) -------------------------
    Case("URL redirecting to the metadata address", "hostile server", image(url("/redirect")), REMOTE_PRIVATE_OK, E,
         "redirects are not followed"),
    Case("URL dripping one byte every 0.2 s", "hostile server", image(url("/drip")),
         {**REMOTE_PRIVATE_OK, "image_timeout_s": 1.0}, E, "did not finish in time"),
    Case("URL whose server never answers", "hostile server", image(url("/stall")),
         {**REMOTE_PRIVATE_OK, "image_timeout_s": 1.0}, E, "did not finish in time"),
    Case("URL with a gzip body (30 MB inflated)", "hostile server", image(url("/gzip")), REMOTE_PRIVATE_OK, E,
         "compressed body"),
    Case("URL announcing 21 MB", "hostile server", image(url("/huge")), REMOTE_PRIVATE_OK, E,
         "limit is 20971520"),
    Case("URL with an endless body", "hostile server", image(url("/endless")), REMOTE_PRIVATE_OK, E,
         "exceeds 20971520 bytes"),
    Case("URL answering 404", "hostile server", image(url("/missing.png")), REMOTE_PRIVATE_OK, E, "HTTP 404"),
    Case("URL serving an HTML page", "hostile server", image(url("/page.html")), REMOTE_PRIVATE_OK, E,
         "not a readable image"),
    Case("URL to a closed port", "hostile server", image(lambda env: "http://127.0.0.1:9/x.png"), REMOTE_PRIVATE_OK,
         E, "could not fetch"),
    Case("URL dripping, cut by run_timeout_s", "hostile server", image(url("/drip")),
         {**REMOTE_PRIVATE_OK, "run_timeout_s": 1.0}, E, "did not finish in time|run_timeout_s ran out"),
    Case("URL by name to the hostile host's drip", "hostile server", image(named("/drip")),
         {**REMOTE_PRIVATE_OK, "image_timeout_s": 1.0}, E, "did not finish in time"),
]


def _write(env: Env, name: str, data: bytes) -> str:
    path = env.tmp / name
    path.write_bytes(data)
    return str(path)
