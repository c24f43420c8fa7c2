"""How sure are we? Intervals from measured seed noise, and the verdict on each compared mixture.

The large-scale comparison trains each mixture with one or more seeds. Seed noise is pooled
over every mixture trained more than once (a mixture trained once borrows it), assuming the
noise is about the same for every mixture; each mixture's target loss gets a Student-t 95%
interval, and each other mixture is compared with `regmix` by a two-sided two-sample t-test
on the pooled variance at the 5% level: `better`, `worse` or `not distinguishable`.
Accuracies get Wilson intervals; a rank correlation gets a bootstrap interval over mixtures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class SeedNoise:
    """Seed standard deviation pooled over replicated mixtures, with its degrees of freedom."""

    std: float  # nan when no mixture has two seeds
    df: int  # sum over mixtures of (seeds - 1)

    @property
    def known(self) -> bool:
        return self.df > 0

    def half_width(self, n: int) -> float:
        """Half the 95% interval of a mean over `n` seeds."""
        if not self.known:
            return math.nan
        return float(stats.t.ppf(0.5 + LEVEL / 2, self.df) * self.std / math.sqrt(n))


def pooled_noise(values: Mapping[str, Sequence[float]]) -> SeedNoise:
    """Pooled within-mixture std of `values` ({mixture: one loss per seed}). Identical loss lists
    are the same runs under two names (`regmix` when it is `best_proxy`'s mixture): counted once."""
    squares, df = 0.0, 0
    for losses in dict.fromkeys(tuple(map(float, v)) for v in values.values()):
        x = np.asarray(losses, dtype=float)
        if len(x) > 1:
            squares += float(((x - x.mean()) ** 2).sum())
            df += len(x) - 1
    return SeedNoise(math.sqrt(squares / df) if df else math.nan, df)


def interval(losses: Sequence[float], noise: SeedNoise) -> tuple[float, float, float]:
    """(mean, low, high) of a mixture's losses over its seeds."""
    mean = float(np.mean(losses))
    h = noise.half_width(len(losses))
    return mean, mean - h, mean + h


@dataclass(frozen=True)
class Comparison:
    """`other` against the reference: the difference of means and what the test says."""

    difference: float  # mean(other) - mean(reference); negative: other has the lower loss
    low: float
    high: float
    p_value: float
    verdict: str  # better | worse | not distinguishable | unknown (no noise estimate)


def compare(other: Sequence[float], reference: Sequence[float], noise: SeedNoise) -> Comparison:
    """Two-sample t-test of mean losses on the pooled seed variance (lower loss is better)."""
    d = float(np.mean(other) - np.mean(reference))
    if not noise.known:
        return Comparison(d, math.nan, math.nan, math.nan, "unknown")
    se = noise.std * math.sqrt(1 / len(other) + 1 / len(reference))
    if se == 0:
        p = 0.0 if d else 1.0
        h = 0.0
    else:
        p = float(2 * stats.t.sf(abs(d) / se, noise.df))
        h = float(stats.t.ppf(0.5 + LEVEL / 2, noise.df) * se)
    if p < 1 - LEVEL:
        verdict = "better" if d < 0 else "worse"
    else:
        verdict = "not distinguishable"
    return Comparison(d, d - h, d + h, p, verdict)


def wilson(correct: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion of `correct` successes in `n` trials."""
    if n <= 0:
        return math.nan, math.nan
    z = float(stats.norm.ppf(0.5 + LEVEL / 2))
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - h), min(1.0, centre + h)


def spearman_interval(x: Sequence[float], y: Sequence[float], seed: int = 0,
                      resamples: int = 2000) -> tuple[float, float, float, int]:
    """(rho, low, high, n): Spearman correlation with a percentile bootstrap 95% interval.

    Resamples draw mixtures with replacement; draws with a constant side are skipped.
    nan where fewer than 3 points or a constant side.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan, math.nan, n
    rho = float(stats.spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        i = rng.integers(0, n, n)
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            draws.append(stats.spearmanr(x[i], y[i]).statistic)
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return rho, float(low), float(high), n
