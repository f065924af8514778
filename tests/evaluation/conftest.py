"""Shared fixtures of the evaluation tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from r3graph_scenes.paint_server import PaintServer


@pytest.fixture
def server() -> Iterator[PaintServer]:
    """The real stand-in generator on 127.0.0.1, wrong on every first painting (error rate 1)."""
    with PaintServer(error_rate=1.0, seed=0) as srv:
        yield srv
