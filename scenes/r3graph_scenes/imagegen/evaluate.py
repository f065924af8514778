"""How well the pixel detector reads a tokenizer's reconstructions, against how it reads the renders.

The training script's model card and ``bench/image_tokenizer.py`` both report these figures, so they
are computed in one place.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from r3graph.evaluation.stats import binomial_lower_bound
from r3graph_scenes.detector import SceneComparison, compare_scenes, detect
from r3graph_scenes.imagegen.fsq import ImageTokenizer
from r3graph_scenes.world import Scene, render

ASPECTS = tuple(k for k in SceneComparison.model_fields if k not in ("exact", "max_position_error"))


def detector_summary(comparisons: list[SceneComparison]) -> dict[str, Any]:
    """Exact count and rate with its one-sided 95% Clopper-Pearson lower bound, per-aspect rates, and
    the largest position error."""
    n = len(comparisons)
    if n == 0:
        raise ValueError("no comparisons to summarise")
    exact = sum(c.exact for c in comparisons)
    totals: Counter[str] = Counter(a for c in comparisons for a in ASPECTS if getattr(c, a))
    return {"n": n, "exact_count": exact, "exact": exact / n, "lower_bound_95": binomial_lower_bound(exact, n),
            **{a: totals[a] / n for a in ASPECTS},
            "max_position_error": max((c.max_position_error or 0.0) for c in comparisons)}


def evaluate_tokenizer(tokenizer: ImageTokenizer, scenes: list[Scene], *, renders: bool = True) -> dict[str, Any]:
    """Detector on reconstructions (and, with ``renders``, on the renders themselves) of ``scenes``;
    pixel MSE on [0, 1] values, codes used, encode/decode milliseconds per image, and the indices of
    the scenes whose reconstruction the detector misreads while it reads the render right."""
    images = [render(s, tokenizer.image_size) for s in scenes]
    started = time.perf_counter()
    codes = tokenizer.encode(images)
    encoded = time.perf_counter()
    recon = tokenizer.decode(codes)
    decoded = time.perf_counter()
    target = np.stack([np.asarray(i, dtype=np.float32) for i in images]) / 255.0
    output = np.stack([np.asarray(i, dtype=np.float32) for i in recon]) / 255.0
    on_recon = [compare_scenes(detect(r), s) for r, s in zip(recon, scenes, strict=True)]
    result: dict[str, Any] = {
        "reconstructions": detector_summary(on_recon),
        "pixel_mse": float(((output - target) ** 2).mean()),
        "codes_used": len(np.unique(codes)), "codebook_size": tokenizer.codebook_size,
        "encode_ms_per_image": 1000 * (encoded - started) / len(images),
        "decode_ms_per_image": 1000 * (decoded - encoded) / len(images),
    }
    if renders:
        on_render = [compare_scenes(detect(i), s) for i, s in zip(images, scenes, strict=True)]
        result["renders"] = detector_summary(on_render)
        result["lost_by_tokenizer"] = [i for i, (a, b) in enumerate(zip(on_render, on_recon, strict=True))
                                       if a.exact and not b.exact]
    return result
