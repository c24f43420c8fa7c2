"""Interval arithmetic of the verdict on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from regmix.statistics import (
    Comparison,
    SeedNoise,
    compare,
    holm,
    interval,
    pooled_noise,
    resolvable,
    seeds_to_resolve,
    spearman_interval,
    wilson,
)

APART = {"regmix": [1.0, 1.1, 0.9], "uniform": [2.0, 2.1, 1.9], "prior": [1.5]}
CLOSE = {"regmix": [1.0, 1.2], "best_proxy": [1.1, 1.3]}


def test_pooled_noise_uses_replicated_mixtures_only():
    noise = pooled_noise(APART)
    assert noise.df == 4 and noise.std == pytest.approx(0.1)  # (0.02 + 0.02) / 4, rooted
    assert not pooled_noise({"a": [1.0], "b": [2.0]}).known
    assert pooled_noise({**APART, "best_proxy": [1.0, 1.1, 0.9]}) == noise  # regmix's runs again: counted once


def test_interval_of_a_mean_over_seeds():
    noise = pooled_noise(APART)
    mean, low, high = interval(APART["regmix"], noise)
    # its own seeds: std 0.1 with 2 df; t(0.975, 2) = 4.3027; 0.1 / sqrt(3) = 0.05774
    assert mean == pytest.approx(1.0) and high - mean == pytest.approx(4.3027 * 0.05774, rel=1e-3)
    _, low1, high1 = interval(APART["prior"], noise)  # one seed borrows the pooled noise (0.1, 4 df)
    assert high1 - low1 == pytest.approx(2 * 2.7764 * 0.1, rel=1e-3)


def test_distinguishable_mixtures():
    noise = pooled_noise(APART)
    worse = compare(APART["uniform"], APART["regmix"], noise)
    assert worse.verdict == "worse" and worse.difference == pytest.approx(1.0) and worse.low > 0
    assert worse.p_value < 1e-3
    better = compare(APART["regmix"], APART["uniform"], noise)
    assert better.verdict == "better" and better.high < 0


def test_indistinguishable_mixtures():
    noise = pooled_noise(CLOSE)  # std sqrt(0.02), df 2; t = 0.1 / 0.1414 = 0.707
    c = compare(CLOSE["best_proxy"], CLOSE["regmix"], noise)
    assert c.verdict == "not distinguishable"
    assert c.p_value == pytest.approx(0.553, abs=2e-3) and c.low < 0 < c.high


def test_no_replicates_no_verdict():
    c = compare([2.0], [1.0], pooled_noise({"a": [2.0], "b": [1.0]}))
    assert c.verdict == "unknown" and c.difference == 1.0 and math.isnan(c.low)


def test_wilson_interval():
    low, high = wilson(50, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson(10, 10)[1] == pytest.approx(1.0)


def test_spearman_interval():
    rng = np.random.default_rng(0)
    x = np.arange(30.0)
    rho, low, high, n = spearman_interval(x, x + rng.normal(0, 3, 30))
    assert n == 30 and low < rho < high and 0.8 < rho <= 1 and high - low < 0.3
    rho, low, high, n = spearman_interval([1, 2], [2, 1])
    assert n == 2 and math.isnan(rho)


# ------------------------------------------------------------------- Welch and Holm
def test_welch_on_a_hand_computed_case():
    other, reference = [1.0, 1.2, 1.4], [2.0, 2.1]
    va, vb = 0.04 / 3, 0.005 / 2  # each side's own sample variance over its seeds
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)
    c = compare(other, reference, SeedNoise(9.9, 40))  # the pooled noise is not used: both have seeds
    assert c.difference == pytest.approx(-0.85) and c.df == pytest.approx(df)
    assert c.p_value == pytest.approx(2 * stats.t.sf(0.85 / se, df))
    assert c.p_value == pytest.approx(stats.ttest_ind(other, reference, equal_var=False).pvalue)
    assert c.high - c.difference == pytest.approx(stats.t.ppf(0.975, df) * se)
    assert c.verdict == "better"


def test_a_single_seed_borrows_the_pooled_noise_and_same_runs_are_not_tested():
    c = compare([1.0], [2.0, 2.2, 2.4], SeedNoise(0.1, 6))
    va, vb = 0.01 / 1, 0.04 / 3
    assert c.df == pytest.approx((va + vb) ** 2 / (va**2 / 6 + vb**2 / 2))
    same = compare([2.0, 2.2], [2.0, 2.2], SeedNoise(0.1, 6))
    assert same.verdict == "same runs" and math.isnan(same.p_value) and same.difference == 0


def test_holm_on_a_hand_computed_case():
    base = {"a": 0.01, "b": 0.04, "c": 0.03}
    raw = {n: Comparison(-1.0, -2.0, 0.0, p, "") for n, p in base.items()}
    raw["same"] = Comparison(0.0, 0.0, 0.0, math.nan, "same runs")
    adjusted = holm(raw)
    # sorted: a 0.01 x 3 = 0.03; c 0.03 x 2 = 0.06; b 0.04 x 1 = 0.04 -> 0.06 (never below the step before)
    assert {n: adjusted[n].p_adjusted for n in base} == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert {n: adjusted[n].verdict for n in base} == {
        "a": "better",
        "c": "not distinguishable",
        "b": "not distinguishable",
    }
    assert adjusted["same"].verdict == "same runs" and {n: adjusted[n].p_value for n in base} == base


def test_seed_sizing_on_a_hand_computed_case():
    """One test at 80% power: (z_0.975 + z_0.8) * std * sqrt(2 / n) = (1.960 + 0.842) * 0.1 * 0.5 for n = 8;
    eight comparisons move the first quantile to Holm's strictest step, z_(1 - 0.05/16) = 2.734."""
    assert resolvable(0.1, 8, 8, tests=1) == pytest.approx(0.1401, abs=1e-4)
    assert resolvable(0.1, 8, 8, tests=8) == pytest.approx((2.734 + 0.8416) * 0.05, abs=1e-3)
    assert resolvable(0.1, 3, 2, tests=1) > resolvable(0.1, 3, 3, tests=1)  # the fewer seeds, the coarser


def test_seeds_to_resolve_inverts_resolvable_and_testing_confirms_it():
    std, tests = 0.04, 4
    n = seeds_to_resolve(std, 0.05, tests)
    assert resolvable(std, n, n, tests) <= 0.05 < resolvable(std, n - 1, n - 1, tests)
    # simulated: a true gap of that size is called (after Holm with three null rivals) about 80% of the time
    rng = np.random.default_rng(0)
    called = 0
    for _ in range(400):
        reference = rng.normal(0, std, n)
        tested = holm(
            {
                "gap": compare(rng.normal(0.05, std, n), reference, SeedNoise(std, n)),
                **{f"same{i}": compare(rng.normal(0, std, n), reference, SeedNoise(std, n)) for i in range(3)},
            }
        )
        called += tested["gap"].verdict == "worse"
    assert 0.7 <= called / 400 <= 0.95
