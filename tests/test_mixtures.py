"""The mixture generator: simplex, grid, caps, de-duplication, seeds, and RegMix's statistics."""

from __future__ import annotations

import numpy as np
import pytest

from regmix.choose.sampling import (
    METHODS,
    PILE_CORPUS_TOKENS,
    PILE_LARGE_TOKENS,
    make_generator,
    pile_generator,
    sample_mixtures,
    swarm_generator,
    to_grid,
)
from regmix.config import LargeConfig, ModelConfig, OptimConfig, SampleConfig
from regmix.errors import UserError
from regmix.mixtures import PILE_TOKEN_SHARE, baseline_mixtures, validate_mixture
from regmix.tables import token_prior

TOTAL = sum(PILE_TOKEN_SHARE.values())
PILE = {d: w / TOTAL for d, w in PILE_TOKEN_SHARE.items()}
PILE_TOKENS = {d: w * PILE_CORPUS_TOKENS for d, w in PILE.items()}
REGMIX_CAPS = SampleConfig(max_epochs=1.5)  # RegMix's 15x the token share, in epochs


def min_pairwise_l1(W: np.ndarray) -> float:
    D = np.abs(W[:, None, :] - W[None, :, :]).sum(axis=-1)
    np.fill_diagonal(D, np.inf)
    return float(D.min())


@pytest.mark.parametrize("method", METHODS)
def test_swarm_is_on_the_capped_grid_and_distinct(method):
    cfg = SampleConfig(method=method, n_mixtures=128)
    gen = pile_generator(cfg)
    W = sample_mixtures(gen, cfg, seed=0)
    assert W.shape == (128, len(PILE))
    assert np.abs(W.sum(axis=1) - 1).max() < 1e-12
    units = W / cfg.minimum
    assert np.abs(units - np.rint(units)).max() < 1e-6, "weights off the minimum grid"
    assert (W >= 0).all()
    caps = np.minimum(cfg.max_epochs * np.array(list(PILE_TOKENS.values())) / PILE_LARGE_TOKENS, 1.0)
    assert (W <= caps + 1e-12).all(), "a domain exceeds max_epochs of the large run"
    assert min_pairwise_l1(W) >= cfg.min_distance


def test_space_filling_spreads_further_than_chance():
    near = {}
    for method in ("uniform", "space_filling"):
        cfg = SampleConfig(method=method, n_mixtures=64)
        near[method] = min_pairwise_l1(sample_mixtures(pile_generator(cfg), cfg, seed=1))
    assert near["space_filling"] > 1.5 * near["uniform"]


def test_seed_decides_the_swarm():
    cfg = SampleConfig(n_mixtures=32)
    gen = pile_generator(cfg)
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
    cfg = SampleConfig(min_strength=1e-3, max_strength=1e-3, n_strengths=1, max_epochs=None)
    gen = pile_generator(cfg)
    W = gen._dirichlet(np.random.default_rng(0), 20_000)
    assert np.isfinite(W).all()
    assert np.abs(W.sum(axis=1) - 1).max() < 1e-5
    assert (W.max(axis=1) > 0.99).mean() > 0.95  # so concentrated that draws are near-vertices


def reference_draws(prior: np.ndarray, cfg: SampleConfig, n: int, seed: int) -> np.ndarray:
    """RegMix's published procedure, one draw at a time, with numpy's own Dirichlet sampler."""
    rng = np.random.default_rng(seed)
    tempered = prior**cfg.temperature / (prior**cfg.temperature).sum()
    caps = np.minimum(prior * 15.0, 1.0)  # RegMix: 15x the token share
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
    cfg = REGMIX_CAPS
    prior = np.array(list(PILE.values()))
    ref = reference_draws(prior, cfg, 6000, seed=0)
    gen = pile_generator(cfg)
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
        ({"nih_exporter": 1.0}, "sample.prior: weight above the cap of 4 epochs in the large run for nih_exporter"),
    ],
)
def test_bad_prior_names_the_key(prior, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pile_generator(SampleConfig(prior=prior))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"method": "sobol"}, "sample.method"),
        ({"minimum": 0.0003}, "sample.minimum"),
        ({"temperature": 0.0}, "sample.temperature"),
        ({"max_epochs": 0.05}, "sample.max_epochs binds: the large run's 25,000,000,000 tokens need more than 0.05"),
        ({"max_epochs": -1.0}, "sample.max_epochs: -1.0 must be > 0"),
    ],
)
def test_bad_sample_config(change, message):
    with pytest.raises(UserError, match=message):
        pile_generator(SampleConfig(**change))


def test_unsatisfiable_swarm_says_which_constraint_binds():
    cfg = SampleConfig(n_mixtures=20, minimum=0.25, max_epochs=None)  # 3 domains, 4 steps: 15 points
    with pytest.raises(UserError, match="sample.min_distance binds: only 15 mixtures"):
        sample_mixtures(make_generator(cfg, {"a": 0.4, "b": 0.3, "c": 0.3}), cfg, seed=0)
    # caps that leave almost no room: each domain at most 1.02 x its share (0.102 epochs)
    cfg = SampleConfig(n_mixtures=50, max_epochs=0.102)
    with pytest.raises(UserError, match="sample.max_epochs binds: only 0 of"):
        sample_mixtures(pile_generator(cfg), cfg, seed=0)


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


def test_caps_are_epochs_of_the_large_run():
    """a: 1,000 train tokens, b: 3,000; a large run of 2,000 tokens at 1.5 epochs caps a at
    1.5 x 1,000 / 2,000 = 0.75 and leaves b uncapped (2.25 > 1)."""
    gen = make_generator(
        SampleConfig(max_epochs=1.5, minimum=0.01), {"a": 0.25, "b": 0.75}, {"a": 1_000, "b": 3_000}, 2_000
    )
    assert (gen.caps / gen.units).tolist() == [0.75, 1.0]
    assert gen.usage(np.array([0.5, 0.5])) == {
        "a": {"weight": 0.5, "cap": 0.75, "epochs": 1.0},
        "b": {"weight": 0.5, "cap": 1.0, "epochs": 0.3333},
    }
    with pytest.raises(UserError, match="need each domain's train tokens and the large run's tokens"):
        make_generator(SampleConfig(), {"a": 0.25, "b": 0.75})
    # a bare token share: no caps, and no epochs to report rather than a made-up 0
    share_only = make_generator(SampleConfig(max_epochs=None, minimum=0.01), {"a": 0.25, "b": 0.75})
    assert share_only.usage(np.array([0.5, 0.5]))["a"] == {"weight": 0.5, "cap": 1.0, "epochs": None}


def test_swarm_generator_takes_the_large_run_from_its_config():
    """Caps from the shards' tokens and steps x batch x context; the prior from the corpus'
    tokens before `data.max_tokens` cut domain a (300 -> 100)."""
    domains = {"a": {"train_tokens": 100, "corpus_train_tokens": 300}, "b": {"train_tokens": 100}}
    assert token_prior(domains) == {"a": 0.75, "b": 0.25}
    large = LargeConfig(model=ModelConfig(context=10), optim=OptimConfig(steps=4, batch_size=2))  # 80 tokens
    gen = swarm_generator(SampleConfig(max_epochs=0.5, minimum=0.01), large, domains)
    assert gen.prior.tolist() == [0.75, 0.25]
    assert (gen.caps / gen.units).tolist() == [0.62, 0.62]  # 0.5 x 100 / 80 = 0.625, on the 0.01 grid
