"""The reliability corpus (tests/reliability/corpus/), one parametrised test, listed in docs/bad-input.md.

Every case goes to its target as a caller would pass it (the compiled graph with the raw input and raw
context, the HTTP server's graph, or the agent-tool example) and must end as the corpus says: a typed
error before any model call with a message that says what to fix, or, for valid inputs, a run whose
model saw images no larger than it needs. A probe on the event loop checks that no case holds it for
more than 100 ms. DNS is faked (tests.reliability.image_host.FakeDNS); every server is on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.corpus import Case, Env, all_cases
from tests.reliability.corpus.runner import MAX_LOOP_STALL_S, check_case
from tests.reliability.image_host import CORPUS_DNS, FakeDNS, ImageHost

CORPUS = all_cases()


@pytest.fixture(scope="module")
def image_host() -> Iterator[ImageHost]:
    with ImageHost() as host:
        yield host


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS(CORPUS_DNS)
    monkeypatch.setattr("r3graph.image_fetch.resolve", dns.resolve)
    return dns


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
async def test_corpus_case(case: Case, tmp_path: Path, image_host: ImageHost, fake_dns: FakeDNS) -> None:
    env = Env(tmp_path, image_host.base, image_host.port)
    stalls = [(await check_case(case, env)).worst_s]
    while stalls[-1] > MAX_LOOP_STALL_S and len(stalls) < 3:  # a busy neighbour, or this input? run again
        again = Env(tmp_path / f"again{len(stalls)}", image_host.base, image_host.port)
        stalls.append((await check_case(case, again)).worst_s)
    assert min(stalls) <= MAX_LOOP_STALL_S, f"the event loop stalled {min(stalls) * 1000:.0f} ms on every try"


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    assert len(CORPUS) >= 200
    assert len({c.id for c in CORPUS}) == len(CORPUS)
