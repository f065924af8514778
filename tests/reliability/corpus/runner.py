"""Run one corpus case the way its caller would, with a probe on the event loop.

The probe is a task that sleeps 10 ms at a time and records how late it wakes: anything that holds
the loop (a synchronous DNS lookup, a decode on the loop, a blocking read of a FIFO) shows up as
lateness; time the OS kept the thread off the CPU is subtracted (see :class:`LoopProbe`). The
machine is shared, so a case over the limit is run again (up to twice) and its best run counts: an
input that blocks the loop blocks it every time, a busy neighbour does not. Objects alive before a
case are frozen out of the garbage collector while it runs (``gc.freeze``): a full collection of the
test process's heap (pytest, LangGraph, hundreds of compiled graphs) pauses any loop for 100-400 ms
here, and that is not the input's doing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gc
import importlib
import io
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from r3graph import build_r3_graph
from tests.fakes import ScriptedChatModel
from tests.reliability.corpus import Case, Env

PROBE_INTERVAL_S = 0.010
MAX_LOOP_STALL_S = 0.100


def _runqueue_wait_s() -> float:
    """Seconds this thread has spent runnable but not running (Linux schedstat; 0 where unavailable)."""
    try:
        with open("/proc/thread-self/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class LoopProbe:
    """``worst_s``: the longest the loop was held, not counting time the OS kept the loop's thread
    waiting for a CPU (on this shared 2-core machine that is often most of the lateness, and it is
    not the input's doing: nothing that runs on the loop is running then). Time blocked in a system
    call or waiting for the GIL still counts. ``worst_raw_s``: plain lateness."""

    worst_s: float = 0.0
    worst_raw_s: float = 0.0
    wakeups: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            before, waited = loop.time(), _runqueue_wait_s()
            await asyncio.sleep(PROBE_INTERVAL_S)
            late = loop.time() - before - PROBE_INTERVAL_S
            self.worst_raw_s = max(self.worst_raw_s, late)
            self.worst_s = max(self.worst_s, late - (_runqueue_wait_s() - waited))
            self.wakeups += 1


@contextlib.asynccontextmanager
async def loop_probe() -> AsyncIterator[LoopProbe]:
    probe = LoopProbe()
    task = asyncio.create_task(probe.run())
    await asyncio.sleep(0)  # let it take its first timestamp
    try:
        yield probe
    finally:
        probe._stop.set()
        await task


@contextlib.contextmanager
def server_graph_env() -> Iterator[Any]:
    """The LangGraph-server graph with the scripted backend and no image root (its module builds the
    graph from the environment at import)."""
    saved = {k: os.environ.get(k) for k in ("R3GRAPH_BACKEND", "R3GRAPH_IMAGE_ROOT")}
    os.environ["R3GRAPH_BACKEND"] = "scripted"
    os.environ.pop("R3GRAPH_IMAGE_ROOT", None)
    try:
        import r3graph.graphs.server as server

        yield importlib.reload(server).graph
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _target(case: Case, context: Any, chat: ScriptedChatModel) -> Callable[[Any], Awaitable[Any]]:
    """What receives the case's input, built before the probe starts (compiling a graph or loading the
    server module is the harness's work, not the input's)."""
    if case.target == "tool":
        from r3graph.backends import make_backend
        from tests.examples.loader import load_example

        tool = load_example("r3_as_tool").make_describe_tool(make_backend("scripted"))
        return tool.ainvoke
    if case.target == "server":
        with server_graph_env() as server_graph:
            return functools.partial(server_graph.ainvoke, context=context)
    graph: Any = build_r3_graph(chat).compile()
    if case.error is None:  # accepted cases run one-shot: one model call is proof enough
        context = {**(context or {}), "max_rounds": 0}
    return functools.partial(graph.ainvoke, context=context)


def images_sent(chat: ScriptedChatModel) -> list[Image.Image]:
    """The images in the first model call's messages, decoded."""
    found = []
    for message in chat.calls[0]["messages"]:
        for part in message.content if isinstance(message.content, list) else []:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = part["image_url"]["url"]
                found.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    return found


async def check_case(case: Case, env: Env, *, max_side: int = 2048) -> LoopProbe:
    """Run ``case`` once and check its outcome; returns the probe (the worst loop stall seen)."""
    chat = ScriptedChatModel(script=lambda prompt: "A picture.")
    result: Any = None
    inputs, context = case.inputs(env), case.context_for(env)  # set-up, not measured (some are 28 MB)
    invoke = _target(case, context, chat)
    gc.freeze()
    try:
        async with loop_probe() as probe:
            outcome: BaseException | None = None
            try:
                result = await invoke(inputs)
            except Exception as exc:
                outcome = exc
    finally:
        gc.unfreeze()
    if case.target == "tool":  # the tool hands refusals back to the agent as its answer
        assert outcome is None and isinstance(result, str), outcome
        assert re.search(case.message, result), (case.message, result)
        return probe
    if case.error is None:
        assert outcome is None, f"a valid input was refused: {outcome!r}"
        if case.target == "graph":
            assert len(chat.calls) == 1 and result["output"] == "A picture."
            sent = images_sent(chat)
            assert sent and all(max(im.size) <= max_side and im.format in ("PNG", "JPEG", "WEBP") for im in sent)
        return probe
    assert isinstance(outcome, case.error), f"expected {case.error.__name__}, got {outcome!r}"
    assert re.search(case.message, str(outcome)), (case.message, str(outcome))
    assert chat.calls == []  # refused before any model call
    return probe
