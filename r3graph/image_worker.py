"""Worker processes for image decoding, with a time budget enforced by killing the worker.

Why processes and not threads: a decoder stuck in C (a progressive JPEG with thousands of scans, a
huge GIF) cannot be stopped from Python, and while it holds the GIL in places it also stalls the
event loop. A worker process costs the loop nothing, and when an image's budget runs out
:mod:`pebble` terminates that worker and starts a fresh one; the caller gets a typed error.

The pool is created on first use, from a thread (starting processes is not done on the event loop),
with the ``spawn`` start method (forking a process that runs vLLM's threads is unsafe). A worker
imports r3graph once (~1-2 s on a busy CPU); after that a small image costs a few milliseconds.
Unlike plain ``spawn``, the workers do not re-import the caller's ``__main__``: a script without an
``if __name__ == "__main__":`` guard would otherwise run again inside every worker.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing.context
import multiprocessing.spawn
import os
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessPool

from r3graph.errors import R3InputError

T = TypeVar("T")
WORKERS = max(1, min(2, os.cpu_count() or 1))
MAX_TASKS_PER_WORKER = 200  # a worker that decoded large images gives its memory back now and then

_pool: ProcessPool | None = None
_lock = threading.Lock()
_starting_worker = threading.local()  # set while this thread starts one of our workers
_plain_preparation_data = multiprocessing.spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    """multiprocessing's start-up data for a spawned child, without the parent's ``__main__`` when the
    child is an image worker (it needs r3graph, not the caller's script). Other processes, started
    by other threads or code, get the data unchanged."""
    data = _plain_preparation_data(name)
    if getattr(_starting_worker, "active", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        _starting_worker.active = True
        try:
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        finally:
            _starting_worker.active = False


class _WorkerContext(multiprocessing.context.SpawnContext):
    Process = _WorkerProcess


WORKER_NAME = "r3-image-worker"  # what ps and psutil show for these processes (Linux; 15 characters)


def _noop() -> None:
    return None


def _name_worker() -> None:
    """Runs in each new worker: name it, so operators (and tests counting vLLM's processes) can tell it,
    and lower its CPU priority, so that on a small machine the process serving requests keeps the CPU
    while a large image decodes."""
    try:
        os.nice(5)
    except OSError:
        pass
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(WORKER_NAME)
    except OSError:
        pass


def _start_pool() -> ProcessPool:
    global _pool
    with _lock:
        if _pool is None:
            multiprocessing.spawn.get_preparation_data = _preparation_data
            pool = ProcessPool(max_workers=WORKERS, max_tasks=MAX_TASKS_PER_WORKER, initializer=_name_worker,
                               context=_WorkerContext())
            pool.schedule(_noop)  # starts the pool's threads and workers here, not on the event loop
            atexit.register(_stop_pool)
            _pool = pool
        return _pool


def _stop_pool() -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.stop()
        pool.join(timeout=5)


def _call(function: Callable[..., T], args: tuple[Any, ...]) -> tuple[bool, Any]:
    """Runs in the worker. R3InputError goes back as its message: exceptions with keyword-only
    constructor arguments do not survive pickling."""
    try:
        return True, function(*args)
    except R3InputError as exc:
        return False, str(exc)


async def run_in_worker(function: Callable[..., T], *args: Any, timeout_s: float, label: str, budget: str) -> T:
    """``function(*args)`` in a worker process, cut after ``timeout_s`` seconds (the worker is killed).
    ``budget`` names the setting that bounds the time, for the error message."""
    pool = _pool if _pool is not None else await asyncio.to_thread(_start_pool)
    if timeout_s <= 0:
        raise R3InputError(f"{label}: no time left for this image ({budget})")
    future = pool.schedule(_call, args=(function, args), timeout=timeout_s)
    try:
        # The asyncio timeout also covers time spent queued behind other requests' images; cancelling
        # the wrapped future cancels the pebble future, which terminates a worker that is running it.
        async with asyncio.timeout(timeout_s):
            ok, value = await asyncio.wrap_future(future)
    except TimeoutError as exc:
        future.cancel()
        raise R3InputError(
            f"{label}: checking and decoding this image took longer than {timeout_s:.1f} s ({budget}); "
            "send a smaller or simpler image"
        ) from exc
    except (ProcessExpired, CancelledError) as exc:
        raise R3InputError(f"{label}: the image decoder died on this image ({exc}); send a different file") from exc
    if not ok:
        raise R3InputError(value)
    return value
