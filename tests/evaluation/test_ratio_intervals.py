"""The interval helpers the benchmarks report with: ratios of paired timings and medians."""

from __future__ import annotations

import random

import pytest

from r3graph.evaluation.stats import mean, median, median_interval, ratio_bootstrap


def test_a_known_ratio_lies_inside_its_interval_and_noise_widens_it() -> None:
    rng = random.Random(3)
    base = [rng.uniform(0.9, 1.1) for _ in range(200)]
    slower = [x * 2.0 * rng.uniform(0.95, 1.05) for x in base]  # paired: same noise, twice as slow
    tight = ratio_bootstrap(base, slower)
    assert tight.low <= 2.0 <= tight.high and tight.high - tight.low < 0.1
    noisy = ratio_bootstrap(base, [x * rng.uniform(0.5, 3.5) for x in base])
    assert noisy.high - noisy.low > tight.high - tight.low
    totals = ratio_bootstrap(base, slower, center=mean)
    assert totals.ratio == pytest.approx(sum(slower) / sum(base))


def test_the_median_interval_holds_the_median_and_the_helpers_refuse_bad_input() -> None:
    values = [float(v) for v in range(1, 102)]
    m, low, high = median_interval(values)
    assert m == median(values) == 51.0 and low <= 51.0 <= high
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    with pytest.raises(ValueError):
        ratio_bootstrap([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        median_interval([])
