"""Uncertainty of benchmark scores: percentile-bootstrap intervals, paired differences and McNemar's test.

Standard library only, with a fixed seed, so a report's intervals are the same every time it is written.
Scores are per question (1/0 for a right/wrong choice, a recall in [0, 1] for open questions); a system's
score is their mean, and tuned - base is compared question by question (paired), which is far tighter
than comparing two independent intervals.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

RESAMPLES = 2000
LEVEL = 0.95


def _percentiles(samples: list[float], level: float) -> tuple[float, float]:
    samples = sorted(samples)
    tail = (1 - level) / 2
    low = samples[math.floor(tail * (len(samples) - 1))]
    high = samples[math.ceil((1 - tail) * (len(samples) - 1))]
    return low, high


def bootstrap_mean(values: Sequence[float], resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0
                   ) -> tuple[float, float, float]:  # fmt: skip
    """Mean of `values` with its percentile-bootstrap interval: (mean, low, high)."""
    if not values:
        raise ValueError("no scores to summarise")
    n = len(values)
    mean = sum(values) / n
    rng = random.Random(seed)
    means = [sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples)]
    low, high = _percentiles(means, level)
    return mean, low, high


def paired_difference(base: Sequence[float], tuned: Sequence[float], resamples: int = RESAMPLES,
                      level: float = LEVEL, seed: int = 0) -> tuple[float, float, float]:  # fmt: skip
    """Mean of tuned - base over the same questions, with its bootstrap interval (questions resampled)."""
    if len(base) != len(tuned):
        raise ValueError(f"paired scores differ in length: {len(base)} and {len(tuned)}")
    return bootstrap_mean([t - b for b, t in zip(base, tuned, strict=True)], resamples, level, seed)


def mcnemar_p(base: Sequence[float], tuned: Sequence[float]) -> float:
    """Two-sided exact McNemar test on right/wrong pairs: only the questions the two systems disagree on count."""
    only_base = sum(1 for b, t in zip(base, tuned, strict=True) if b >= 0.5 > t)
    only_tuned = sum(1 for b, t in zip(base, tuned, strict=True) if t >= 0.5 > b)
    n = only_base + only_tuned
    if n == 0:
        return 1.0
    k = min(only_base, only_tuned)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def verdict(low: float, high: float) -> str:
    """How a difference reads in the report: a direction only when its interval excludes 0."""
    if low > 0:
        return "higher than base"
    if high < 0:
        return "lower than base"
    return "no measurable difference"
