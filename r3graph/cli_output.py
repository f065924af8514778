"""What ``r3graph run`` shows a person: the stages, a short summary, errors in a line or two.

Everything else (vLLM's, torch's and transformers' logs and warnings, from this process and from
the engine's child processes) goes to a log file under the project cache. The redirection works on
file descriptors 1 and 2, not on Python's logging: vLLM's engine core and workers are child processes
that inherit those descriptors (and libraries print from C++ and tqdm), so nothing short of moving
the descriptors catches them all. Our own output goes to copies of the original descriptors taken
first. The log is shown in full with ``--verbose`` (no redirection at all) or when the run fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, ClassVar, TextIO

from r3graph.errors import R3Error, R3ValidationError

KEEP_LOGS = 50  # per command; older run logs are removed as new ones start


def logs_dir() -> Path:
    """``$R3GRAPH_LOG_DIR``, else ``.cache/logs`` in a checkout, else the user's cache folder."""
    from r3graph.serving.env import project_cache_dir

    if os.environ.get("R3GRAPH_LOG_DIR"):
        return Path(os.environ["R3GRAPH_LOG_DIR"])
    cache = project_cache_dir() or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "r3graph"
    return cache / "logs"


def shown_path(path: Path) -> str:
    """The path relative to the working directory when it is inside it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class LogCapture:
    """Point fds 1 and 2 at a log file for the rest of the process; keep the terminal for us.

    Not undone on purpose: engine shutdown at exit and the child processes (which hold copies of the
    descriptors) keep logging, and that belongs in the file too.
    """

    def __init__(self, command: str) -> None:
        folder = logs_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:  # a read-only install or cache: the logs still need a home
            folder = Path(tempfile.gettempdir()) / "r3graph-logs"
            folder.mkdir(parents=True, exist_ok=True)
        for old in sorted(folder.glob(f"{command}-*.log"))[:-KEEP_LOGS]:  # names sort by time
            old.unlink(missing_ok=True)
        self.path = folder / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        sys.stdout.flush()
        sys.stderr.flush()
        self.stdout: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
        self.stderr: TextIO = os.fdopen(os.dup(2), "w", buffering=1)
        with self.path.open("ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)

    def text(self) -> str:
        sys.stdout.flush()
        sys.stderr.flush()
        return self.path.read_text(encoding="utf-8", errors="replace")


def event_line(event: dict[str, Any]) -> str | None:
    """One line per streamed stage event; None for the ones the summary repeats."""
    stage = str(event.get("stage", "?"))
    if stage == "final":
        return None
    where = f"round {event.get('round', '?')}"
    if stage == "answer":
        return f"[{where}] check {int(event.get('index', 0)) + 1}: {event.get('item', '')} -> {event.get('text', '')}"
    text = str(event.get("text", ""))
    if stage == "reflect":
        findings = event.get("findings") or []
        failed = sum(1 for f in findings if f.get("consistent") is False)
        verdict = f"{event.get('verdict')} (score {float(event.get('score', 0)):.2f})"
        if findings:
            return f"[{where}] reflect: {verdict}, {failed} of {len(findings)} checks failed"
        return f"[{where}] reflect: {verdict}" + (f": {text}" if text else "")
    if "image_bytes" in event:
        text = f"{text}  [image, {event['image_bytes']} bytes]"
    return f"[{where}] {stage}: {text}"


class RunScreen:
    """The person's view of a run: stage lines, a spinner while the engine starts, dim notes."""

    colours: ClassVar[dict[str, str]] = {"reason": "cyan", "refine": "green", "reflect": "yellow", "review": "magenta"}

    def __init__(self, console: Any, quiet_stages: bool) -> None:
        self.console, self.quiet_stages = console, quiet_stages
        self.start_s: float | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        line = event_line(event)
        if line is not None and not self.quiet_stages:
            self.console.print(line, style=self.colours.get(str(event.get("stage")), "white"), markup=False)

    def say(self, text: str) -> None:
        # soft_wrap: a path stays on one line, whole, to copy and paste
        self.console.print(f"r3graph: {text}", style="dim", markup=False, highlight=False, soft_wrap=True)

    async def engine_start(self, starting: Any) -> None:
        from rich.live import Live
        from rich.spinner import Spinner

        t0 = time.perf_counter()
        spinner = Spinner("dots", text="starting the vLLM engine (tens of seconds on a CPU)...")
        # No stdout/stderr redirection by rich: fds 1/2 already go to the log file (or, with
        # --verbose, should reach the terminal as they are).
        with Live(spinner, console=self.console, transient=True, redirect_stdout=False, redirect_stderr=False):
            await starting
        self.start_s = time.perf_counter() - t0
        self.say(f"engine ready in {self.start_s:.1f} s")


def summary_lines(final: dict[str, Any], elapsed: float, start_s: float | None, saved: str | None) -> list[str]:
    usage = final.get("usage")
    rounds = len(final.get("rounds") or [])
    parts = [f"stop: {final.get('stop_reason')}", f"rounds: {rounds}"]
    if usage is not None:
        calls = f"calls: {usage.calls}" + (f" + {usage.image_calls} image" if usage.image_calls else "")
        cut = f", {usage.truncated_calls} cut at max_tokens" if usage.truncated_calls else ""
        parts += [calls + cut, f"tokens: {usage.input_tokens} in ({usage.cached_input_tokens} cached), "
                               f"{usage.output_tokens} out"]
    time_part = f"time: {elapsed:.2f} s" + (f" (+ {start_s:.1f} s engine start)" if start_s is not None else "")
    lines = []
    if final.get("image") is not None:
        lines.append(f"image of round {final.get('selected_round')}, {len(final['image'])} bytes: "
                     f"{saved or 'not saved (--save-images DIR)'}")
    else:
        lines.append(str(final.get("output")))
    lines.append("  ".join([*parts, time_part]))
    return lines


def error_lines(exc: BaseException) -> list[str]:
    """The error as a person reads it: one line, two when the run had a draft before it failed."""
    if not isinstance(exc, R3Error):
        return [f"r3graph: the run failed: {type(exc).__name__}: {exc}"]
    lines = [f"r3graph: {exc}"]
    if exc.best_draft:
        lines.append(f"r3graph: best draft before the failure (round {len(exc.rounds) - 1}): {exc.best_draft}")
    return lines


def run_failed(exc: BaseException, capture: LogCapture | None, err: TextIO) -> int:
    """After a failed run: the log in full (it is why), then the error in a line or two. Exit status 1;
    2 for bad input, 130 for Ctrl-C. A traceback is written only for errors that are not ours (to the log, or to the
    terminal with --verbose), where it is what a bug report needs."""
    if isinstance(exc, KeyboardInterrupt):
        err.write("r3graph: interrupted\n")
        return 130
    if isinstance(exc, R3ValidationError):  # found after the checks (e.g. by a server): still bad input
        err.write(f"r3graph: {exc}\n")
        return 2
    if not isinstance(exc, R3Error):
        traceback.print_exception(exc)
    if capture is not None:
        err.write(capture.text() + f"(log: {shown_path(capture.path)})\n")
    err.write("\n".join(error_lines(exc)) + "\n")
    return 1


def keep_stdout_for(result_only: bool) -> TextIO:
    """``--json --verbose``: logs go to the terminal on stderr, stdout carries the one JSON object.
    vLLM and its children log to fd 1, so fd 1 becomes stderr and the result goes to a saved copy."""
    if not result_only:
        return sys.stdout
    out = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    return out
