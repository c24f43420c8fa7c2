"""How sure are we? Intervals from measured seed noise, and the verdict on each compared mixture.

The large-scale comparison trains each mixture with one or more seeds. Seed noise differs
by mixture (a concentrated mixture's runs can spread ten times a broad one's), so each mixture
trained more than once is judged on its own seed variance, and one trained once borrows the
variance pooled over the others. Each mixture's target loss gets a Student-t 95% interval, and
each other mixture is compared with `regmix` by Welch's two-sided t-test; within one report the
p-values are adjusted by Holm's method, and the verdict reads the adjusted p at the 5% level:
`better`, `worse` or `not distinguishable`. Two names for the same runs are `same runs`, never
tested. `resolvable` and `seeds_to_resolve` size the seeds: what difference a verdict can call.
Accuracies get Wilson intervals; a rank correlation gets a bootstrap interval over mixtures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95
POWER = 0.8  # the chance of calling a real difference that seed sizing aims for


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


def spread(losses: Sequence[float], noise: SeedNoise) -> SeedNoise:
    """A mixture's own seed noise when it has two seeds or more, else the pooled `noise`."""
    x = np.asarray(losses, dtype=float)
    return SeedNoise(float(x.std(ddof=1)), len(x) - 1) if len(x) > 1 else noise


def interval(losses: Sequence[float], noise: SeedNoise) -> tuple[float, float, float]:
    """(mean, low, high) of a mixture's losses over its seeds, on its own seed noise (`spread`)."""
    mean = float(np.mean(losses))
    h = spread(losses, noise).half_width(len(losses))
    return mean, mean - h, mean + h


@dataclass(frozen=True)
class Comparison:
    """`other` against the reference: the difference of means and what the test says."""

    difference: float  # mean(other) - mean(reference); negative: other has the lower loss
    low: float
    high: float
    p_value: float  # Welch's, unadjusted
    verdict: str  # better | worse | not distinguishable | unknown (no noise estimate) | same runs
    df: float = math.nan  # Welch-Satterthwaite degrees of freedom
    p_adjusted: float = math.nan  # Holm's, over the report's comparisons (`holm`); the verdict reads it

    def as_dict(self) -> dict:
        return {
            "difference": self.difference,
            "ci95": [self.low, self.high],
            "p_value": self.p_value,
            "p_holm": self.p_adjusted,
            "df": self.df,
            "verdict": self.verdict,
        }


SAME_RUNS = "same runs"


def compare(other: Sequence[float], reference: Sequence[float], noise: SeedNoise) -> Comparison:
    """Welch's two-sample t-test of mean losses (lower is better), each side on its own seed
    noise (`spread`); the verdict at 5% before any adjustment (`holm` adjusts it)."""
    d = float(np.mean(other) - np.mean(reference))
    if tuple(map(float, other)) == tuple(map(float, reference)):
        return Comparison(0.0, 0.0, 0.0, math.nan, SAME_RUNS)
    a, b = spread(other, noise), spread(reference, noise)
    if not (a.known and b.known):
        return Comparison(d, math.nan, math.nan, math.nan, "unknown")
    va, vb = a.std**2 / len(other), b.std**2 / len(reference)
    se = math.sqrt(va + vb)
    if se == 0:
        return _judged(Comparison(d, d, d, 0.0 if d else 1.0, "", math.inf))
    df = (va + vb) ** 2 / (va**2 / a.df + vb**2 / b.df)
    h = float(stats.t.ppf(0.5 + LEVEL / 2, df) * se)
    return _judged(Comparison(d, d - h, d + h, float(2 * stats.t.sf(abs(d) / se, df)), "", df))


def _judged(c: Comparison, p: float | None = None) -> Comparison:
    """`c` with its verdict read from `p` (default: its own p-value)."""
    p = c.p_value if p is None else p
    verdict = ("better" if c.difference < 0 else "worse") if p < 1 - LEVEL else "not distinguishable"
    return Comparison(c.difference, c.low, c.high, c.p_value, verdict, c.df, p)


def holm(comparisons: Mapping[str, Comparison]) -> dict[str, Comparison]:
    """Holm's step-down adjustment over the tested comparisons of one report (those with a
    p-value): each verdict then holds with a 5% family-wise error."""
    tested = sorted((c.p_value, n) for n, c in comparisons.items() if not math.isnan(c.p_value))
    out, running = dict(comparisons), 0.0
    for i, (p, name) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - i) * p))
        out[name] = _judged(comparisons[name], running)
    return out


def _z_sum(tests: int, power: float) -> float:
    """z of the strictest Holm step (5% / `tests`, two-sided) plus z of `power`."""
    return float(stats.norm.ppf(1 - (1 - LEVEL) / (2 * max(tests, 1))) + stats.norm.ppf(power))


def resolvable(std: float, seeds: int, other_seeds: int, tests: int, power: float = POWER) -> float:
    """The smallest difference of mean losses between a mixture of `seeds` seeds and one of `other_seeds`
    that the verdict calls with probability `power`, at seed std `std` and a 5% family-wise level over
    `tests` comparisons (normal approximation: with few seeds Welch's t needs somewhat more)."""
    return _z_sum(tests, power) * std * math.sqrt(1 / seeds + 1 / other_seeds)


def seeds_to_resolve(std: float, difference: float, tests: int, power: float = POWER) -> int:
    """Seeds of each of two mixtures for the verdict to call `difference` with probability `power`
    (the inverse of `resolvable` with equal seeds)."""
    return max(2, math.ceil(2 * (_z_sum(tests, power) * std / abs(difference)) ** 2))


def wilson(correct: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion of `correct` successes in `n` trials."""
    if n <= 0:
        return math.nan, math.nan
    z = float(stats.norm.ppf(0.5 + LEVEL / 2))
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - h), min(1.0, centre + h)


def spearman_interval(
    x: Sequence[float], y: Sequence[float], seed: int = 0, resamples: int = 2000
) -> tuple[float, float, float, int]:
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
