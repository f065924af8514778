"""Dense perception targets: an auxiliary training loss on the image tokens, discarded after training.

Why: with the language-modelling loss alone the vision tower learnt colour (a per-pixel average) but
stayed near chance on shape, existence and relations; the answer loss flat-lined after ~600 steps
while the language skills kept improving. A caption gives the vision tower one weak, sentence-level
signal per image. Here each of the 16 image tokens (a 4x4 grid of 16 px cells, row-major, the order
Idefics3's pixel shuffle produces) is also asked which object, if any, it shows: its shape, colour
and size. That is exact truth from the scene graph, cheap (three linear heads on the connector
output), and reaches the vision tower directly. The heads are not part of the saved model; the
shipped weights stay a plain ``Idefics3ForConditionalGeneration``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from r3graph_scenes.world import COLOURS, EXTENT, SHAPES, SIZES, Scene

GRID = 4  # 16 image tokens = 4 x 4 cells
NONE = 0  # class 0 of every head: no object in this cell


def cell_labels(scene: Scene) -> torch.Tensor:
    """(3, 16) long: shape, colour and size class per cell (0 = background, else 1 + index).

    A cell belongs to an object when the cell's centre lies in the object's bounding box, and the
    cell holding an object's centre always does, so small objects (12.8 px < one 16 px cell) get one.
    """
    labels = torch.zeros((3, GRID * GRID), dtype=torch.long)
    for obj in scene.objects:
        half = EXTENT[obj.size] / 2
        cells = {min(int(obj.y * GRID), GRID - 1) * GRID + min(int(obj.x * GRID), GRID - 1)}
        for row in range(GRID):
            for col in range(GRID):
                cx, cy = (col + 0.5) / GRID, (row + 0.5) / GRID
                if abs(cx - obj.x) <= half and abs(cy - obj.y) <= half:
                    cells.add(row * GRID + col)
        for cell in cells:
            labels[0, cell] = 1 + SHAPES.index(obj.shape)
            labels[1, cell] = 1 + COLOURS.index(obj.colour)
            labels[2, cell] = 1 + SIZES.index(obj.size)
    return labels


class PerceptionHeads(nn.Module):
    """Linear probes from each image token to (shape, colour, size); trained jointly, then dropped."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(hidden, 1 + len(v)) for v in (SHAPES, COLOURS, SIZES))

    def loss(self, image_tokens: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Mean cross-entropy over the three heads, and the shape accuracy on object cells (a
        progress figure: it is the skill the plain LM loss failed to teach)."""
        losses = []
        shape_acc = 0.0
        for k, head in enumerate(self.heads):
            logits = head(image_tokens)  # (B, 16, C)
            target = labels[:, k]  # (B, 16)
            losses.append(F.cross_entropy(logits.transpose(1, 2), target))
            if k == 0:
                on = target != NONE
                shape_acc = float((logits.argmax(-1)[on] == target[on]).float().mean()) if on.any() else 0.0
        return torch.stack(losses).mean(), shape_acc


class ImageTokenTap:
    """Keeps the connector's output (the image tokens the text model sees) from the last forward."""

    def __init__(self, model: Any) -> None:  # an Idefics3ForConditionalGeneration
        self.tokens: torch.Tensor | None = None
        self._handle = model.model.connector.register_forward_hook(self._keep)

    def _keep(self, _module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        self.tokens = output

    def remove(self) -> None:
        self._handle.remove()
