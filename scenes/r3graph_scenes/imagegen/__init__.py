"""Image generation for the scene world: a discrete image tokenizer (:mod:`.fsq`), and in time a
generator language model over its codes and a server for it.

The tokenizer turns a 64x64 scene image into 64 integer codes (an 8x8 grid, row-major) and back, so a
language model can write images as it writes text; the pixel-only detector
(:mod:`r3graph_scenes.detector`) scores what it writes.
"""

from r3graph_scenes.imagegen.fsq import ImageTokenizer

__all__ = ["ImageTokenizer"]
