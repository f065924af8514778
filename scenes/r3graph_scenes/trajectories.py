"""The scene world as a plug-in for ``r3graph export`` (``--world r3graph_scenes.trajectories``).

The core export knows nothing about scenes: a *world* is any module with ``ground_truth(image)``
(what the right answer for an image file is, or None) and ``score(text, record)`` (a number for a
text against the record's ground truth, or None). This one reads a scene sidecar beside each image
(``scene3.png`` -> ``scene3.json``) and scores captions by F1, so records carry ``draft_f1`` and
``output_f1`` and ``--pairs`` keeps the runs whose refine improved the caption.
"""

from __future__ import annotations

from pathlib import Path

from r3graph.export import TrajectoryRecord
from r3graph_scenes.metrics import score_caption
from r3graph_scenes.world import Scene

SCORE_NAME = "f1"


def ground_truth(image: Path) -> Scene | None:
    """The ground-truth scene next to the image, or None (absent, or not a scene)."""
    sidecar = image.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        return Scene.from_json(sidecar.read_text())
    except ValueError:
        return None


def score(text: str, record: TrajectoryRecord) -> float | None:
    """Caption F1 against the record's ground-truth scene (None when it has none)."""
    truth = record.ground_truth
    if truth is None or truth.kind != "scene" or truth.scene is None:
        return None
    return score_caption(text, Scene.model_validate(truth.scene)).f1


def scene_f1(text: str, record: TrajectoryRecord) -> float | None:  # the name the docs and tests use
    return score(text, record)


__all__ = ["SCORE_NAME", "ground_truth", "scene_f1", "score"]
