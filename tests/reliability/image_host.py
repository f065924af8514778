"""A hostile (and a well-behaved) image host on 127.0.0.1, and a fake DNS for remote-image tests.

:class:`ImageHost` answers like the web servers an agent's model may point R3 at: a good PNG, a
redirect to a private address, a body dripped a byte at a time, headers that never come, a gzip body,
a Content-Length over the limit, an endless body, a 404, an HTML page. It records the ``Host`` header
of every request, so tests can see which name a connection made to an IP address carried.

:class:`FakeDNS` replaces :func:`r3graph.image_fetch.resolve` (the one place the library resolves
names): listed names answer from a table, numeric hosts are parsed without any lookup, and anything
else fails as an unknown name would. Nothing here touches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import gzip
import socket
from http.server import BaseHTTPRequestHandler
from typing import Self

from r3graph.serving.loopback import LoopbackHTTPServer
from tests.fakes import png_bytes

GOOD_PNG = png_bytes("green", (24, 24))
MB = 2**20


class ImageHost(LoopbackHTTPServer):
    def __init__(self) -> None:
        super().__init__()
        self.hosts: list[str] = []  # Host header of every request, in order
        self.paths: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        host = self
        gzip_body = gzip.compress(bytes(30 * MB))  # made here, not in a handler (it holds the GIL for a while)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key.replace("_", "-"), value)
                if "Content_Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                host.hosts.append(self.headers.get("Host", ""))
                host.paths.append(self.path)
                route = self.path.split("?", 1)[0]
                try:
                    self._route(route)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            def _route(self, route: str) -> None:
                if route == "/ok.png":
                    self._send(200, GOOD_PNG, Content_Type="image/png")
                elif route == "/redirect":
                    self._send(302, Location="http://169.254.169.254/latest/meta-data/")
                elif route == "/drip":  # one byte every 0.2 s of a body that claims 100 kB
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    for byte in GOOD_PNG * 100:
                        if host._stopping.wait(0.2):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                elif route == "/stall":  # accepts, reads the request, never answers
                    host._stopping.wait(30)
                elif route == "/gzip":
                    self._send(200, gzip_body, Content_Encoding="gzip")
                elif route == "/huge":
                    self._send(200, b"", Content_Length=str(21 * MB))
                elif route == "/endless":  # no Content-Length, zeros until the client hangs up
                    self.send_response(200)
                    self.end_headers()
                    chunk = bytes(64 * 1024)
                    for _ in range(25 * MB // len(chunk)):
                        if host._stopping.is_set():
                            return
                        self.wfile.write(chunk)
                elif route == "/page.html":
                    self._send(200, b"<html><body>not an image</body></html>", Content_Type="text/html")
                else:
                    self._send(404, b"not found")

        return self._serve(Handler, "image-host", join_handlers=False)


class FakeDNS:
    """``resolve(host, port)`` from a table; numeric hosts parsed locally (AI_NUMERICHOST: no query)."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = dict(table or {})
        self.queries: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.queries.append(host)
        if host in self.table:
            return list(self.table[host])
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        except socket.gaierror as exc:
            raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known ({host}, fake DNS)") from exc
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


# Names the corpus uses. 93.184.216.34 is a public address: it is only ever *listed* (every case that
# lists it is refused before any connection), never connected to.
PUBLIC = "93.184.216.34"
CORPUS_DNS = {
    "loopback.test": ["127.0.0.1"],
    "rebind.test": [PUBLIC, "127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "nat64.test": ["64:ff9b::a00:1"],
    "xn--bcher-kva.test": ["127.0.0.1"],
    "imghost.test": ["127.0.0.1"],
}

