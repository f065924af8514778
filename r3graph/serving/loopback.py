"""A small HTTP server on 127.0.0.1, served from a background thread: the stand-in image generator
(:class:`r3graph_scenes.paint_server.PaintServer`) and the tests' fake OpenAI server share its
lifecycle (start, port, url, stop that releases delayed handlers, ``with``)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackHTTPServer:
    """Subclasses build their handler class and call :meth:`_serve` from ``start()``.

    ``_stopping`` is set by :meth:`stop` before shutdown, so handlers that wait (a scripted delay, a
    request that never gets an answer) can wait on it and return at once.
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1]) if self._httpd is not None else self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self, handler: type[BaseHTTPRequestHandler], name: str, *, join_handlers: bool) -> Self:
        """Bind 127.0.0.1 and serve in a daemon thread. ``join_handlers``: stop() waits for handler
        threads (no request may outlive the server); False lets stop() return even while a client
        is still sending a body."""
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        httpd.daemon_threads = not join_handlers
        httpd.block_on_close = join_handlers
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{name}-{self.port}", daemon=True)
        self._thread.start()
        return self

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        self._stopping.set()  # releases handlers that wait
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
