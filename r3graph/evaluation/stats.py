"""Paired statistics: the same scenes under two conditions, so differences are per scene."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

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


def binomial_tail(successes: int, n: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(n, p), summed in log space (exact for any n a test uses)."""
    if successes <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(successes, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def binomial_lower_bound(successes: int, n: int, *, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower bound on a success rate: the smallest p under which seeing
    ``successes`` or more of ``n`` has probability at least ``1 - confidence``. With 1000 of 1000 at
    95% it is 0.997; it is how a test turns a measured accuracy into a claim that can fail."""
    if not 0 <= successes <= n or n <= 0:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    low, high = 0.0, successes / n
    for _ in range(60):  # bisection: the tail grows with p
        mid = (low + high) / 2
        if binomial_tail(successes, n, mid) < 1.0 - confidence:
            low = mid
        else:
            high = mid
    return low


class RatioInterval(BaseModel):
    """center(b) / center(a) (median by default) with a percentile bootstrap interval, from timings
    taken in pairs."""

    ratio: float
    low: float
    high: float
    n: int
    confidence: float

    def __str__(self) -> str:
        return f"{self.ratio:.3f}x [{self.low:.3f}, {self.high:.3f}]"


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def ratio_bootstrap(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
    center: Callable[[Sequence[float]], float] = median,
) -> RatioInterval:
    """The ratio ``center(b) / center(a)`` of two conditions measured in interleaved pairs (a_i, b_i
    ran back to back, so machine noise hits both alike); pairs are resampled together. ``center=mean``
    compares totals (a workload's cost), the default median compares typical runs."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    if not a:
        raise ValueError("no paired samples")
    n = len(a)
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        ratios.append(center([b[i] for i in picks]) / center([a[i] for i in picks]))
    ratios.sort()
    tail = (1.0 - confidence) / 2
    return RatioInterval(ratio=center(b) / center(a), low=ratios[int(tail * (resamples - 1))],
                         high=ratios[int((1.0 - tail) * (resamples - 1))], n=n, confidence=confidence)


def median_interval(
    values: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """The median with a percentile bootstrap interval: (median, low, high)."""
    if not values:
        raise ValueError("no samples")
    n = len(values)
    rng = random.Random(seed)
    medians = sorted(median([values[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    tail = (1.0 - confidence) / 2
    return median(values), medians[int(tail * (resamples - 1))], medians[int((1.0 - tail) * (resamples - 1))]
