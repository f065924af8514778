"""A loopback HTTP service run as a child process: start, wait for its health URL, stop its whole
process group. Shared by the vLLM server (:mod:`r3graph.serving.server`) and the vLLM router
(:mod:`r3graph.serving.cluster`).

Why process groups: vLLM's API server forks an engine core and workers; the router is a native
binary behind a Python launcher. Signalling the group is the only reliable way to stop all of them,
and ``PR_SET_PDEATHSIG`` stops the leader if we are SIGKILLed, so nothing is orphaned.
"""

from __future__ import annotations

import collections
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

from r3graph.serving.env import child_env

_TAIL_LINES = 40


class ServiceError(RuntimeError):
    """A child service failed to start or died; the message ends with its last log lines."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:  # runs in the child between fork and exec (Linux only)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no orphaned server if we are SIGKILLed
    except OSError:
        pass


def signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process_group(proc: subprocess.Popen[Any], first: signal.Signals, grace: float) -> None:
    """Send ``first`` to the group led by ``proc`` (a session leader), SIGKILL what is left after
    ``grace`` s, reap the leader."""
    pgid = proc.pid  # session leader: its pid is the group id
    signal_group(pgid, first)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(pgid):
        proc.poll()  # reap the leader so it does not count as alive (zombie)
        time.sleep(0.1)
    if group_alive(pgid):
        signal_group(pgid, signal.SIGKILL)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class Managed:
    """``with thing:`` starts it and stops it whatever happens inside."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LoopbackProcess(Managed):
    """Base class: subclasses give :meth:`command`, a ``label`` and the error type they raise."""

    label = "child process"
    health_path = "/health"
    error_type: type[RuntimeError] = ServiceError

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 300.0,
        echo: IO[str] | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self.echo = echo  # e.g. sys.stderr for the CLI: show the log live
        self.log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen[str] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    # -- addresses ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # -- lifecycle ----------------------------------------------------------------------------
    def _pump_log(self, stream: IO[str]) -> None:
        log = self.log_path.open("a") if self.log_path else None
        try:
            for line in stream:
                self._tail.append(line.rstrip("\n"))
                if self.echo is not None:
                    self.echo.write(line)
                    self.echo.flush()
                if log is not None:
                    log.write(line)
        finally:
            if log is not None:
                log.close()

    def log_tail(self, n: int = _TAIL_LINES) -> str:
        return "\n".join(list(self._tail)[-n:])

    def _fail(self, why: str) -> RuntimeError:
        time.sleep(0.2)  # let the reader thread collect the last lines of a dying process
        self.stop()
        return self.error_type(f"{why}\n--- last lines of the {self.label} log ---\n{self.log_tail()}")

    def child_env(self) -> dict[str, str]:
        """The child's environment; servers of a model override it to pass the model (offline mode
        and cache folders apply only to local model directories)."""
        return child_env()

    def start(self) -> Self:
        self.launch()
        self.wait_healthy()
        return self

    def launch(self) -> None:
        """Start the process without waiting for it. Call it from the thread that will stop it (the
        main thread): the parent-death signal fires when the *thread* that forked the child exits."""
        if self._proc is not None:
            raise self.error_type(f"{self.label} already started")
        self._proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=self.child_env(),
            start_new_session=True,  # own process group: stop() reaches every grandchild
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        assert self._proc.stdout is not None
        self._reader = threading.Thread(target=self._pump_log, args=(self._proc.stdout,),
                                        name=f"{self.label}-log-{self.port}", daemon=True)
        self._reader.start()

    def wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        # trust_env=False: an HTTP(S)_PROXY in the environment must not capture loopback traffic.
        with httpx.Client(trust_env=False, timeout=2.0) as http:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise self._fail(f"{self.label} exited with code {code} during start-up")
                try:
                    if http.get(f"{self.url}{self.health_path}").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise self._fail(f"{self.label} not healthy after {self.startup_timeout:.0f} s")
                time.sleep(0.5)

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash would (fault tests); ``stop()`` still reaps it."""
        if self._proc is not None:
            signal_group(self._proc.pid, signal.SIGKILL)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left after ``grace`` s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_process_group(proc, signal.SIGTERM, grace)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def wait(self) -> int:
        """Block until the process exits on its own; returns its exit code."""
        assert self._proc is not None
        return self._proc.wait()
