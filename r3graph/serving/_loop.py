"""One background asyncio loop per process that owns every in-process vLLM engine.

Why: ``AsyncLLM`` binds its output-handler task to the event loop of its first request. Callers
come from many loops (sync ``invoke`` uses a fresh loop per call, pytest gives each test its own,
notebooks have theirs), so the engine lives on a dedicated daemon thread's loop and callers hop
to it: coroutines via ``submit``, async generators via ``bridge_async``/``bridge_sync``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


class EngineLoop:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Bumped with every new loop: an engine started on an earlier one is bound to a dead loop.
        self.generation = 0

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="r3graph-vllm-loop", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                self.generation += 1
            return self._loop

    def ensure_generation(self) -> int:
        """Start the loop if it is not running; the generation of the loop now serving."""
        self._ensure()
        return self.generation

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure())

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the engine loop; cancelling the caller cancels it there too."""
        return await asyncio.wrap_future(self.submit(coro))

    async def bridge_async(self, make_agen: Callable[[], AsyncIterator[T]]) -> AsyncIterator[T]:
        """Iterate an async generator that runs on the engine loop, from the caller's loop."""
        caller = asyncio.get_running_loop()
        q: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue()

        def post(item: Any, err: BaseException | None = None) -> None:
            try:
                caller.call_soon_threadsafe(q.put_nowait, (item, err))
            except RuntimeError:  # caller's loop already closed: nobody is listening
                pass

        async def pump() -> None:
            try:
                async for item in make_agen():
                    post(item)
            except asyncio.CancelledError:
                post(_DONE)
                raise
            except BaseException as e:
                post(_DONE, e)
            else:
                post(_DONE)

        fut = self.submit(pump())
        try:
            while True:
                item, err = await q.get()
                if item is _DONE:
                    if err is not None:
                        raise err
                    return
                yield item
        finally:
            fut.cancel()  # consumer stopped early: closing the generator aborts the vLLM request

    def bridge_sync(self, make_agen: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
        """Iterate an engine-loop async generator from plain synchronous code."""
        if self.in_loop_thread():
            raise RuntimeError("synchronous call from the engine loop thread would deadlock")
        q: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue()

        async def pump() -> None:
            try:
                async for item in make_agen():
                    q.put((item, None))
            except BaseException as e:
                q.put((_DONE, e))
                if isinstance(e, asyncio.CancelledError):
                    raise
            else:
                q.put((_DONE, None))

        fut = self.submit(pump())
        try:
            while True:
                item, err = q.get()
                if item is _DONE:
                    if err is not None and not isinstance(err, asyncio.CancelledError):
                        raise err
                    return
                yield item
        finally:
            fut.cancel()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()


ENGINE_LOOP = EngineLoop()
