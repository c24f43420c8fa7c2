"""Search: exact top-k over chunks, the chosen mixture's constraints, a known optimum, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from regmix.config import SampleConfig, SearchConfig
from regmix.errors import UserError
from regmix.mixtures import baseline_mixtures
from regmix.sampling import make_generator
from regmix.regression import FittedRegressor
from regmix.search import TopK, search, summary

SHARE = {"web": 0.4, "code": 0.25, "books": 0.2, "wiki": 0.1, "math": 0.05}


class LinearLoss:
    """A stand-in fitted model: loss linear in the weights; remembers every prediction it made."""

    def __init__(self, coef: np.ndarray):
        self.coef = np.asarray(coef, dtype=float)
        self.seen: list[np.ndarray] = []

    def predict(self, W: np.ndarray) -> np.ndarray:
        pred = W @ self.coef
        self.seen.append(pred)
        return pred


def fitted(coef: dict[str, float], n_members: int = 0, noise: float = 0.0) -> FittedRegressor:
    """A regressor over SHARE's domains in a shuffled order (search must match columns by name)."""
    domains = ["math", "books", "web", "wiki", "code"]
    c = np.array([coef[d] for d in domains])
    rng = np.random.default_rng(0)
    members = [LinearLoss(c + noise * rng.normal(size=len(c))) for _ in range(n_members)]
    return FittedRegressor(domains, "loss", "linear", LinearLoss(c), members)


def test_top_k_merge_is_exact():
    rng = np.random.default_rng(0)
    W, pred = rng.random((1000, 3)), rng.random(1000)
    whole = TopK.of(W, pred, 10)
    merged = TopK.of(W[:400], pred[:400], 10).merge(TopK.of(W[400:], pred[400:], 10), 10)
    assert np.array_equal(whole.pred, np.sort(pred)[:10])
    assert np.array_equal(merged.pred, whole.pred) and np.array_equal(merged.W, whole.W)


def test_search_finds_the_known_optimum_within_the_caps():
    """Loss falls with `wiki`, rises with the rest: the best mixtures max out wiki's cap."""
    sample = SampleConfig(method="uniform", max_usage=5.0)
    gen = make_generator(sample, SHARE)
    model = fitted({"web": 1.0, "code": 1.0, "books": 1.0, "wiki": -3.0, "math": 1.0})
    cfg = SearchConfig(n_simulations=20_000, top_k=20, chunk_size=3000)
    result = search(model, gen, cfg, seed=0)
    chosen = dict(zip(gen.domains, result.chosen))
    assert abs(sum(chosen.values()) - 1) < 1e-12
    assert all(result.chosen <= gen.caps / gen.units + 1e-12)
    assert chosen["wiki"] == pytest.approx(0.5, abs=0.02)  # its cap: 5 x 0.1
    assert np.all(np.diff(result.top.pred) >= 0)
    out = summary(result, model, baseline_mixtures(SHARE, {"half_web": {"web": 0.5, "code": 0.5}}))
    assert -1.0 <= out["predicted_target"] < -0.95  # the optimum: wiki at its cap 0.5, predicts -1.0
    assert out["predicted_target"] < min(b["predicted_target"] for b in out["baselines"].values())
    assert set(out["baselines"]) == {"uniform", "prior", "half_web"}
    assert sum(out["train"].values()) == pytest.approx(1, abs=1e-9)
    assert out["spread"]["members"] == 0 and "weight_std" not in out["spread"]


def test_result_does_not_depend_on_threads_and_spread_comes_from_members():
    gen = make_generator(SampleConfig(), SHARE)
    coef = {"web": 0.05, "code": 0.0, "books": 0.1, "wiki": 0.02, "math": 0.08}  # close: members disagree
    model = fitted(coef, n_members=4, noise=0.3)
    runs = [
        search(model, gen, SearchConfig(n_simulations=5000, top_k=10, chunk_size=1000), seed=1, threads=t)
        for t in (1, 2)
    ]
    assert np.array_equal(runs[0].chosen, runs[1].chosen)
    assert runs[0].member_choices.shape == (4, len(SHARE))
    # The reported top-k are the 10 best of every prediction the model made over the pool.
    model.base.seen.clear()
    search(model, gen, SearchConfig(n_simulations=5000, top_k=10, chunk_size=1000), seed=1, threads=2)
    pool = np.concatenate(model.base.seen)
    assert len(pool) == 5000 and np.array_equal(runs[0].top.pred, np.sort(pool)[:10])
    # The spread is that of the top-k, recomputed from their mixtures.
    spread = summary(runs[0], model, baseline_mixtures(SHARE, {}))["spread"]
    assert spread["members"] == 4 and max(spread["weight_std"].values()) > 0
    cols = [gen.domains.index(d) for d in model.domains]
    again = model.predict(runs[0].top.W[:, cols])
    assert spread["top_k_predicted"] == {"min": again.min(), "max": again.max(), "std": again.std()}

    assert runs[0].spread_simulations == 5000  # the default prefix covers the whole small pool

    few = search(model, gen, SearchConfig(n_simulations=5000, top_k=10, chunk_size=1000, spread_simulations=1500), 1)
    assert few.spread_simulations == 2000 and np.array_equal(few.chosen, runs[0].chosen)

    same = fitted(coef, n_members=3)
    quiet = search(same, gen, SearchConfig(n_simulations=5000, top_k=10, chunk_size=1000), seed=1)
    assert np.all(quiet.member_choices == quiet.chosen)


def test_regressor_fitted_on_other_domains_is_a_user_error():
    gen = make_generator(SampleConfig(), SHARE)
    model = FittedRegressor(["web", "code"], "loss", "linear", LinearLoss(np.zeros(2)))
    with pytest.raises(UserError, match="re-run the fit stage"):
        search(model, gen, SearchConfig(n_simulations=100, top_k=5, chunk_size=100), seed=0)


@pytest.mark.parametrize(
    "change, message",
    [({"top_k": 500}, "search.top_k"), ({"chunk_size": 0}, "search.chunk_size")],
)
def test_bad_search_config(change, message):
    gen = make_generator(SampleConfig(), SHARE)
    model = fitted(dict.fromkeys(SHARE, 0.0))
    cfg = SearchConfig(**{"n_simulations": 100, "top_k": 5, "chunk_size": 100, **change})
    with pytest.raises(UserError, match=message):
        search(model, gen, cfg, seed=0)
