"""The shared engine registry: users counted, no start overlapping a stop, cancelled starts and dead
loops recovered. Unit tests swap vLLM's engine construction for a stand-in that records its life;
the last test shares the real engine between two users."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from r3graph.serving import registry
from r3graph.serving._loop import ENGINE_LOOP
from r3graph.serving.registry import EngineSpec
from tests.helpers import png_data_url


class StandInEngine:
    """Records when it was built and stopped; stopping takes a while, as vLLM's does."""

    log: ClassVar[list[tuple[str, int, float]]] = []
    built: ClassVar[int] = 0

    def __init__(self, stop_s: float = 0.0) -> None:
        StandInEngine.built += 1
        self.number = StandInEngine.built
        self.stop_s = stop_s
        self.stopped = False
        self.output_handler = None
        self.log.append(("start", self.number, time.monotonic()))

    def shutdown(self) -> None:
        time.sleep(self.stop_s)
        self.stopped = True
        self.log.append(("stop", self.number, time.monotonic()))


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    settings: dict[str, Any] = {"stop_s": 0.0, "start_s": 0.0}

    def construct(spec: EngineSpec) -> StandInEngine:
        time.sleep(settings["start_s"])
        return StandInEngine(settings["stop_s"])

    monkeypatch.setattr(registry, "_construct", construct)
    StandInEngine.log.clear()
    yield settings
    for spec in [s for s in registry._engines if s.model.startswith("stand-in")]:
        registry.shutdown_engine(spec)


def spec(name: str) -> EngineSpec:
    return EngineSpec(model=f"stand-in/{name}")


def test_an_engine_stops_when_its_last_user_releases_it(stand_in: dict[str, Any]) -> None:
    s = spec("shared")
    first = registry.acquire(s).result(5)
    second = registry.acquire(s).result(5)
    assert first is second and registry.users(s) == 2
    assert registry.release(s) is False  # one user left early: the other still has its engine
    assert not first.stopped and registry.get_engine(s) is first
    assert registry.release(s, held=False) is False  # a non-user's shutdown leaves a used engine alone
    assert registry.release(s) is True and first.stopped
    assert s not in registry.running_specs()


def test_a_start_never_overlaps_the_stop_of_the_same_configuration(stand_in: dict[str, Any]) -> None:
    s = spec("race")
    stand_in["stop_s"] = 0.4
    old = registry.get_engine(s)
    stopper = threading.Thread(target=registry.shutdown_engine, args=(s,))
    stopper.start()
    time.sleep(0.05)  # the stop is under way
    new = registry.get_engine(s)
    stopper.join()
    assert new is not old and old.stopped
    events = [(kind, n) for kind, n, _ in StandInEngine.log]
    assert events.index(("stop", old.number)) < events.index(("start", new.number))


def test_a_cancelled_start_is_started_again(stand_in: dict[str, Any]) -> None:
    s = spec("cancelled")
    stand_in["start_s"] = 0.3
    registry._get_future(s)[0].cancel()
    time.sleep(0.4)
    assert registry.running_specs().count(s) == 0  # a cancelled start does not count as running
    assert isinstance(registry.get_engine(s), StandInEngine)  # no CancelledError from the old future


def test_an_engine_bound_to_a_dead_loop_is_replaced(stand_in: dict[str, Any]) -> None:
    s = spec("dead-loop")
    old = registry.get_engine(s)
    ENGINE_LOOP.stop()  # the loop thread is gone, and the engine's output handler with it
    new = registry.get_engine(s)
    assert new is not old
    for _ in range(50):
        if old.stopped:
            break
        time.sleep(0.05)
    assert old.stopped  # the stale one is stopped, not left holding its processes


async def test_a_holder_whose_engine_was_stopped_under_it_counts_itself_on_the_restart(
        stand_in: dict[str, Any]) -> None:
    from r3graph.serving import ChatVLLMEngine

    model = ChatVLLMEngine(model="stand-in/reset").start()
    s = model.spec
    assert registry.users(s) == 1
    registry.shutdown_engines()  # what the server and cluster fixtures do: a forced stop of all
    assert registry.users(s) == 0
    restarted = await model._engine()  # the next request starts it again...
    assert registry.users(s) == 1  # ...and counts the holder, so another user's release cannot stop it
    assert await model._engine() is restarted and registry.users(s) == 1  # counted once, not per request
    other = ChatVLLMEngine(model="stand-in/reset").start()
    other.shutdown()
    assert not restarted.stopped
    model.shutdown()
    assert restarted.stopped and registry.users(s) == 0


@pytest.mark.engine
async def test_two_users_share_the_engine_and_one_leaves_early(engine) -> None:
    from langchain_core.messages import HumanMessage

    from r3graph.serving import ChatVLLMEngine

    # Two explicit users, whatever the session fixture's own count is (other tests may have stopped
    # and lazily restarted the shared engine): the one that leaves must not stop the other's engine.
    before = registry.users(engine.spec)
    first = await ChatVLLMEngine(model=engine.model, max_tokens=16).astart()
    other = await ChatVLLMEngine(model=engine.model, max_tokens=8).astart()  # a second user, same engine
    assert registry.users(engine.spec) == before + 2

    def ask(i: int) -> list[HumanMessage]:
        return [HumanMessage(content=[{"type": "image_url", "image_url": {"url": png_data_url((i * 40, 90, 0))}},
                                      {"type": "text", "text": f"Question {i}?"}])]

    running = [asyncio.ensure_future(first.ainvoke(ask(i), max_tokens=16)) for i in range(4)]
    await other.ashutdown()  # leaves while the first user's requests are in flight
    replies = await asyncio.gather(*running)
    assert all(r.usage_metadata["output_tokens"] > 0 for r in replies)
    assert registry.users(engine.spec) == before + 1 and engine.spec in registry.running_specs()
    await first.ashutdown()
    assert registry.users(engine.spec) == before
