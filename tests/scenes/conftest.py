"""Shared hand-made scenes: small enough to reason about exactly in the tests."""

import pytest

from r3graph_scenes import Scene, SceneObject


def obj(colour: str, shape: str, size: str, x: float, y: float) -> SceneObject:
    return SceneObject(colour=colour, shape=shape, size=size, x=x, y=y)


@pytest.fixture
def pair() -> Scene:
    """A large red circle clearly left of a small blue square (same height)."""
    return Scene.build([obj("red", "circle", "large", 0.2, 0.5), obj("blue", "square", "small", 0.7, 0.5)])


@pytest.fixture
def crowd() -> Scene:
    """Two small red circles (top), a large blue square (bottom left), a small green star (bottom right)."""
    return Scene.build([
        obj("red", "circle", "small", 0.2, 0.15),
        obj("red", "circle", "small", 0.75, 0.15),
        obj("blue", "square", "large", 0.25, 0.7),
        obj("green", "star", "small", 0.8, 0.75),
    ])
