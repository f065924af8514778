"""Paired statistics: the same scenes under two conditions, so differences are per scene."""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import BaseModel


class PairedDifference(BaseModel):
    """mean(b - a) over paired items with a percentile bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low > 0 or self.high < 0


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> PairedDifference:
    """Bootstrap the mean per-item difference ``b - a`` by resampling items (scenes) with replacement."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    if not a:
        raise ValueError("no paired items")
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1.0 - confidence) / 2
    low = means[int(tail * (resamples - 1))]
    high = means[int((1.0 - tail) * (resamples - 1))]
    return PairedDifference(mean=sum(diffs) / n, low=low, high=high, n=n, confidence=confidence)
