"""The cheap baselines: `nearest` on a hand-made corpus, `target_only` within the caps, the EM by hand."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_data import SENTENCES, build_tokens

from regmix.choose.baselines import cheap_baselines, fit_mixture, hashed_counts, nearest, target_only, water_fill
from regmix.choose.sampling import make_generator
from regmix.config import SampleConfig
from regmix.data.shards import open_tokens, shard_path
from regmix.errors import UserError
from regmix.target import Target

SHARE = {"alpha": 0.5, "beta": 0.3, "gamma": 0.2}


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    return build_tokens(tmp_path_factory.mktemp("data") / "tokens")


def generator(max_epochs=None):
    return make_generator(SampleConfig(max_epochs=max_epochs), SHARE, {d: 1000 * w for d, w in SHARE.items()}, 1000)


def test_em_recovers_the_weights_of_a_known_mixture():
    components = np.array([[0.7, 0.2, 0.1, 0.0], [0.0, 0.1, 0.3, 0.6]])
    counts = 1e6 * (0.3 * components[0] + 0.7 * components[1])  # the target is exactly 30/70
    assert fit_mixture(components, counts) == pytest.approx([0.3, 0.7], abs=1e-4)
    assert fit_mixture(components, np.array([5.0, 1.0, 0.0, 0.0]))[0] > 0.99  # only the first explains it


def test_hashed_counts_count_every_unigram_and_bigram():
    counts = hashed_counts(np.array([1, 2, 3, 1, 2]))
    assert counts.sum() == 5 + 4 and counts.max() == 2  # `1` twice and `1 2` twice (collisions aside)


def test_nearest_weighs_the_domains_whose_text_the_target_reads_like(tokens):
    # a held-out set written as 70% code (gamma) and 30% prose (alpha), none of it from the train split
    alpha, gamma = np.asarray(open_tokens(tokens, "valid", "alpha")), np.asarray(open_tokens(tokens, "valid", "gamma"))
    mixed = np.concatenate([alpha[: int(0.3 * len(alpha))], gamma[: int(0.7 * len(alpha))]])
    np.asarray(mixed, dtype=np.uint16).tofile(shard_path(tokens, "valid", "held"))
    gen = generator()
    weights = nearest(tokens, Target.parse("held"), gen)
    assert list(weights) == list(SENTENCES) and sum(weights.values()) == pytest.approx(1.0)
    assert weights["gamma"] > weights["alpha"] > weights["beta"]
    assert weights["gamma"] == pytest.approx(0.7, abs=0.15) and weights["beta"] < 0.1
    # a training domain's own valid text is read as that domain
    assert nearest(tokens, Target.parse("beta"), gen)["beta"] > 0.8


def test_water_fill_shares_in_proportion_under_the_room():
    assert water_fill(np.array([1.0, 1.0, 2.0]), 1.0, np.array([1.0, 0.1, 1.0])) == pytest.approx([0.3, 0.1, 0.6])
    assert water_fill(np.array([1.0, 0.0]), 0.5, np.array([1.0, 1.0])) == pytest.approx([0.5, 0.0])


def test_target_only_puts_what_the_caps_allow_on_the_target_and_the_rest_by_the_prior():
    free = target_only(Target.parse("gamma"), generator())
    assert free["gamma"] == pytest.approx(1.0)
    capped = target_only(Target.parse("gamma"), generator(max_epochs=2.0))  # gamma's cap: 2 x 0.2 = 0.4
    assert capped["gamma"] == pytest.approx(0.4, abs=1e-3)
    assert capped["alpha"] / capped["beta"] == pytest.approx(0.5 / 0.3, rel=0.01)  # the rest by the prior
    both = target_only(Target.parse({"alpha": 1.0, "gamma": 3.0}), generator(max_epochs=2.0))
    assert both["gamma"] == pytest.approx(0.4, abs=1e-3) and both["alpha"] == pytest.approx(0.6, abs=1e-3)
    assert target_only(Target.parse("task:qa"), generator()) is None


def test_target_only_for_a_target_without_training_domains_is_an_error(tokens):
    with pytest.raises(UserError, match="target_only. needs a target over training domains"):
        cheap_baselines(["regmix", "target_only"], tokens, Target.parse("task:qa"), generator())
    assert cheap_baselines(["regmix", "uniform"], tokens, Target.parse("task:qa"), generator()) == {}
