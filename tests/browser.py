"""Open a page in a real headless Chromium (Debian's ``chromium``, ``make browser``) over the DevTools
protocol and report what a person would see: console errors, failed loads, network requests, the
images as decoded (natural size), and a screenshot.

Run by hand to refresh the README's screenshot::

    python -m tests.browser report.html docs/report.png
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0", "--window-size=1200,900"]

# What the page shows, read in the page after it has loaded (runs through CDP, so the page's own
# Content-Security-Policy, which forbids scripts, does not apply to it).
INSPECT = """(() => ({
  title: document.title,
  images: [...document.images].map(i => ({alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth,
      naturalHeight: i.naturalHeight, width: +i.dataset.width, height: +i.dataset.height,
      shownWidth: i.getBoundingClientRect().width})),
  rounds: [...document.querySelectorAll('[data-round]')].map(r => +r.dataset.round),
  runs: document.querySelectorAll('section.run').length,
  final: !!document.getElementById('final'),
  scripts: document.scripts.length,
  text: document.body.innerText,
}))()"""


def find_chromium() -> str | None:
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


@dataclass
class PageCheck:
    info: dict[str, Any]
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page loaded but data: ones
    screenshot: bytes | None = None


class Chromium:
    """One headless Chromium with a fresh profile, driven over its DevTools websocket."""

    def __init__(self, binary: str) -> None:
        # Chromium's helper processes (renderer, crashpad) can still write the profile for a moment after
        # the browser exits: they get their own process group, stopped together in close().
        self.profile = tempfile.TemporaryDirectory(prefix="r3-chromium-", ignore_cleanup_errors=True)
        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile.name}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        url = self._devtools_url()
        from websockets.sync.client import connect

        self.ws = connect(url, max_size=64 * 2**20).__enter__()  # closed in close()
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def _devtools_url(self, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        assert self.proc.stderr is not None
        lines = []
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            lines.append(line)
            if match := re.search(r"DevTools listening on (ws://\S+)", line):
                return match.group(1)
        self.close()
        raise RuntimeError("chromium did not start:\n" + "".join(lines[-20:]))

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        msg_id = next(self.ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
        raise TimeoutError(method)

    def check(self, path: Path, *, screenshot: bool = False) -> PageCheck:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.events.clear()
        self.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        self.wait_for("Page.loadEventFired")
        info = self.send("Runtime.evaluate", {"expression": INSPECT, "returnByValue": True}, session=session)
        result = PageCheck(info=info["result"]["value"])
        if screenshot:  # the whole page, at 3/4 scale: small enough for a README
            size = self.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 0.75}
            shot = self.send("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True},
                             session=session)
            result.screenshot = base64.b64decode(shot["data"])
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                result.console_errors.append(json.dumps(params.get("args")))
            elif method == "Runtime.exceptionThrown":
                result.console_errors.append(json.dumps(params.get("exceptionDetails")))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                result.console_errors.append(params["entry"]["text"])
            elif method == "Network.requestWillBeSent" and not params["request"]["url"].startswith("data:"):
                result.requests.append(params["request"]["url"])  # inline images are not requests out
        self.send("Target.closeTarget", {"targetId": target})
        return result

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        try:  # the helpers left in the browser's group (its own session, started above)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.profile.cleanup()


if __name__ == "__main__":
    binary = find_chromium()
    if binary is None:
        sys.exit("chromium not found: run `make browser`")
    browser = Chromium(binary)
    try:
        page = browser.check(Path(sys.argv[1]), screenshot=True)
    finally:
        browser.close()
    assert page.screenshot is not None
    Path(sys.argv[2]).write_bytes(page.screenshot)
    print(json.dumps({k: v for k, v in page.info.items() if k != "text"}), page.console_errors)
