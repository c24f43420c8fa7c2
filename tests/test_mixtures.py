"""The mixture generator: simplex, grid, caps, de-duplication, seeds, and RegMix's statistics."""

from __future__ import annotations

import numpy as np
import pytest

from regmix.config import SampleConfig
from regmix.errors import UserError
from regmix.mixtures import PILE_TOKEN_SHARE, baseline_mixtures, validate_mixture
from regmix.sampling import METHODS, make_generator, sample_mixtures, to_grid

TOTAL = sum(PILE_TOKEN_SHARE.values())
PILE = {d: w / TOTAL for d, w in PILE_TOKEN_SHARE.items()}


def min_pairwise_l1(W: np.ndarray) -> float:
    D = np.abs(W[:, None, :] - W[None, :, :]).sum(axis=-1)
    np.fill_diagonal(D, np.inf)
    return float(D.min())


@pytest.mark.parametrize("method", METHODS)
def test_swarm_is_on_the_capped_grid_and_distinct(method):
    cfg = SampleConfig(method=method, n_mixtures=128)
    gen = make_generator(cfg, PILE)
    W = sample_mixtures(gen, cfg, seed=0)
    assert W.shape == (128, len(PILE))
    assert np.abs(W.sum(axis=1) - 1).max() < 1e-12
    units = W / cfg.minimum
    assert np.abs(units - np.rint(units)).max() < 1e-6, "weights off the minimum grid"
    assert (W >= 0).all()
    caps = np.minimum(np.array(list(PILE.values())) * cfg.max_usage, 1.0)
    assert (W <= caps + 1e-12).all(), "a domain exceeds max_usage x its token share"
    assert min_pairwise_l1(W) >= cfg.min_distance


def test_space_filling_spreads_further_than_chance():
    near = {}
    for method in ("uniform", "space_filling"):
        cfg = SampleConfig(method=method, n_mixtures=64)
        near[method] = min_pairwise_l1(sample_mixtures(make_generator(cfg, PILE), cfg, seed=1))
    assert near["space_filling"] > 1.5 * near["uniform"]


def test_seed_decides_the_swarm():
    cfg = SampleConfig(n_mixtures=32)
    gen = make_generator(cfg, PILE)
    a, b, c = (sample_mixtures(gen, cfg, seed=s) for s in (3, 3, 4))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_grid_rows_sum_to_one_exactly():
    W = np.random.default_rng(0).dirichlet(np.full(7, 0.05), size=5000)
    K = to_grid(W, 5000)
    assert (K.sum(axis=1) == 5000).all()
    assert (K >= 0).all()


def test_tiny_concentrations_do_not_underflow():
    """RegMix's smallest strength x a tiny prior is ~1e-4: plain gamma draws would give 0/0."""
    cfg = SampleConfig(min_strength=1e-3, max_strength=1e-3, n_strengths=1, max_usage=None)
    gen = make_generator(cfg, PILE)
    W = gen._dirichlet(np.random.default_rng(0), 20_000)
    assert np.isfinite(W).all()
    assert np.abs(W.sum(axis=1) - 1).max() < 1e-5
    assert (W.max(axis=1) > 0.99).mean() > 0.95  # so concentrated that draws are near-vertices


def reference_draws(prior: np.ndarray, cfg: SampleConfig, n: int, seed: int) -> np.ndarray:
    """RegMix's published procedure, one draw at a time, with numpy's own Dirichlet sampler."""
    rng = np.random.default_rng(seed)
    tempered = prior**cfg.temperature / (prior**cfg.temperature).sum()
    caps = np.minimum(prior * cfg.max_usage, 1.0)
    strengths = np.logspace(np.log10(cfg.min_strength), np.log10(cfg.max_strength), cfg.n_strengths)
    out = []
    for _ in range(n):
        w = rng.dirichlet(tempered * strengths[rng.integers(len(strengths))])
        if (w > caps).any():
            continue
        w = np.where(w < cfg.minimum, 0.0, w)
        out.append(np.round(w / w.sum() / cfg.minimum) * cfg.minimum)
    return np.array(out)


def test_generator_statistics_match_regmix_on_the_pile_prior():
    """Per-domain mean weight and fraction of zeros agree with RegMix's procedure (4 sigma)."""
    cfg = SampleConfig()
    prior = np.array(list(PILE.values()))
    ref = reference_draws(prior, cfg, 6000, seed=0)
    gen = make_generator(cfg, PILE)
    ours = gen.weights(gen.draw(np.random.default_rng(0), 200_000)[0])
    assert 0.5 < len(ours) / 200_000 < 0.65 and abs(len(ours) / 200_000 - len(ref) / 6000) < 0.04  # acceptance
    n = len(ref)
    mean_se = ref.std(axis=0) / np.sqrt(n)
    assert (np.abs(ours.mean(axis=0) - ref.mean(axis=0)) < 4 * mean_se + 1e-4).all()
    zeros_ref, zeros_ours = (ref == 0).mean(axis=0), (ours == 0).mean(axis=0)
    zeros_se = np.sqrt(zeros_ref * (1 - zeros_ref) / n)
    assert (np.abs(zeros_ours - zeros_ref) < 4 * zeros_se + 1e-3).all()


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "prior, message",
    [
        ({"arxiv": 0.5, "nonsense": 0.5}, "sample.prior: unknown domain(s) nonsense"),
        ({"arxiv": 1.5, "pile_cc": -0.5}, "sample.prior.pile_cc"),
        ({"arxiv": 0.5, "pile_cc": 0.4}, "sample.prior: weights sum to 0.9"),
        ({"nih_exporter": 1.0}, "sample.prior: weight above max_usage x token share for nih_exporter"),
    ],
)
def test_bad_prior_names_the_key(prior, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_generator(SampleConfig(prior=prior), PILE)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"method": "sobol"}, "sample.method"),
        ({"minimum": 0.0003}, "sample.minimum"),
        ({"temperature": 0.0}, "sample.temperature"),
        ({"max_usage": 0.5}, "sample.max_usage binds"),
    ],
)
def test_bad_sample_config(change, message):
    with pytest.raises(UserError, match=message):
        make_generator(SampleConfig(**change), PILE)


def test_unsatisfiable_swarm_says_which_constraint_binds():
    cfg = SampleConfig(n_mixtures=20, minimum=0.25, max_usage=None)  # 3 domains, 4 steps: 15 points
    with pytest.raises(UserError, match="sample.min_distance binds: only 15 mixtures"):
        sample_mixtures(make_generator(cfg, {"a": 0.4, "b": 0.3, "c": 0.3}), cfg, seed=0)
    # caps that leave almost no room: each domain at most 1.02 x its share
    cfg = SampleConfig(n_mixtures=50, max_usage=1.02)
    with pytest.raises(UserError, match="sample.max_usage binds: only 0 of"):
        sample_mixtures(make_generator(cfg, PILE), cfg, seed=0)


def test_validate_mixture_fills_missing_domains_and_names_the_key():
    assert validate_mixture({"a": 1}, ["a", "b"], "x") == {"a": 1.0, "b": 0.0}
    for bad, message in [({"c": 1.0}, "human_mixtures.h: unknown"), ({"a": "lots"}, "human_mixtures.h.a")]:
        with pytest.raises(UserError, match=message):
            validate_mixture(bad, ["a", "b"], "human_mixtures.h")


def test_baselines_include_human_mixtures():
    prior = {"a": 0.25, "b": 0.75}
    out = baseline_mixtures(prior, {"mine": {"b": 1.0}})
    assert out == {"uniform": {"a": 0.5, "b": 0.5}, "prior": prior, "mine": {"a": 0.0, "b": 1.0}}
    with pytest.raises(UserError, match="human_mixtures.bad: weights sum"):
        baseline_mixtures(prior, {"bad": {"a": 0.7}})
    with pytest.raises(UserError, match="human_mixtures.uniform"):
        baseline_mixtures(prior, {"uniform": {"a": 1.0}})
