"""Search: exact top-k over chunks, the chosen mixture's constraints, a known optimum, bad input;
each decision rule's constraint, thread independence, and the evidence beside the choice."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from scipy.stats import norm

from regmix.choose.choice import summary
from regmix.choose.decision import decision_text
from regmix.choose.pool import TopK
from regmix.choose.regression import FittedRegressor
from regmix.choose.regression.fitted import pair_confidence
from regmix.choose.rules import RULES, kl_to_prior, l1_nearest, proxy_spacing, select
from regmix.choose.sampling import accepted_draws, make_generator
from regmix.choose.search import incumbent, search
from regmix.config import SampleConfig, SearchConfig
from regmix.errors import UserError
from regmix.mixtures import baseline_mixtures

SHARE = {"web": 0.4, "code": 0.25, "books": 0.2, "wiki": 0.1, "math": 0.05}
TOKENS = {d: 1000 * w for d, w in SHARE.items()}  # a large run of 1,000 tokens: max_epochs x share caps


def generator(cfg: SampleConfig):
    return make_generator(cfg, SHARE, TOKENS, 1000)


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
    sample = SampleConfig(method="uniform", max_epochs=5.0)
    gen = generator(sample)
    model = fitted({"web": 1.0, "code": 1.0, "books": 1.0, "wiki": -3.0, "math": 1.0})
    cfg = SearchConfig(n_simulations=20_000, rule="top_k", top_k=20, chunk_size=3000)
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
    # mixture.yaml's usage: wiki at 0.5 of a 1,000-token run is 5 epochs of its 100 tokens, its cap
    assert out["usage"]["wiki"] == {
        "weight": pytest.approx(chosen["wiki"]),
        "cap": 0.5,
        "epochs": pytest.approx(chosen["wiki"] / 0.1, abs=1e-4),
    }


def test_result_does_not_depend_on_threads_and_spread_comes_from_members():
    gen = generator(SampleConfig())
    coef = {"web": 0.05, "code": 0.0, "books": 0.1, "wiki": 0.02, "math": 0.08}  # close: members disagree
    model = fitted(coef, n_members=4, noise=0.3)
    top_k = SearchConfig(n_simulations=5000, rule="top_k", top_k=10, chunk_size=1000)
    runs = [search(model, gen, top_k, seed=1, threads=t) for t in (1, 2)]
    assert np.array_equal(runs[0].chosen, runs[1].chosen)
    assert runs[0].member_choices.shape == (4, len(SHARE))
    # The reported top-k are the 10 best of every prediction the model made over the pool.
    model.base.seen.clear()
    search(model, gen, top_k, seed=1, threads=2)
    pool = np.concatenate(model.base.seen)
    assert len(pool) == 5000 and np.array_equal(runs[0].top.pred, np.sort(pool)[:10])
    # The spread is that of the top-k, recomputed from their mixtures.
    spread = summary(runs[0], model, baseline_mixtures(SHARE, {}))["spread"]
    assert spread["members"] == 4 and max(spread["weight_std"].values()) > 0
    cols = [gen.domains.index(d) for d in model.domains]
    again = model.predict(runs[0].top.W[:, cols])
    assert spread["top_k_predicted"] == {"min": again.min(), "max": again.max(), "std": again.std()}

    assert runs[0].spread_simulations == 5000  # the default prefix covers the whole small pool

    few = search(model, gen, dataclasses.replace(top_k, spread_simulations=1500), 1)
    assert few.spread_simulations == 2000 and np.array_equal(few.chosen, runs[0].chosen)

    same = fitted(coef, n_members=3)
    quiet = search(same, gen, top_k, seed=1)
    assert np.all(quiet.member_choices == quiet.chosen)


def test_regressor_fitted_on_other_domains_is_a_user_error():
    gen = generator(SampleConfig())
    model = FittedRegressor(["web", "code"], "loss", "linear", LinearLoss(np.zeros(2)))
    with pytest.raises(UserError, match="re-run the fit stage"):
        search(model, gen, SearchConfig(n_simulations=100, rule="top_k", top_k=5, chunk_size=100), seed=0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"top_k": 500}, "search.top_k"),
        ({"chunk_size": 0}, "search.chunk_size"),
        ({"rule": "best"}, "search.rule"),
        ({"kappa": -1.0}, "search.kappa"),
        ({"band": -0.5}, "search.band"),
        ({"trust_radius": 0.0}, "search.trust_radius"),
        ({"candidates": 0}, "search.candidates"),
        ({"rule": "trust_region"}, "trained proxies"),
        ({"rule": "lower_confidence"}, "n_bootstrap"),
        ({"rule": "band"}, "n_bootstrap"),
        ({"min_confidence": 1.5}, "search.min_confidence"),
        ({"min_confidence": -0.1}, "search.min_confidence"),
    ],
)
def test_bad_search_config(change, message):
    gen = generator(SampleConfig())
    model = fitted(dict.fromkeys(SHARE, 0.0))
    cfg = SearchConfig(**{"n_simulations": 100, "top_k": 5, "chunk_size": 100, **change})
    with pytest.raises(UserError, match=message):
        search(model, gen, cfg, seed=0)


class Recording(LinearLoss):
    """LinearLoss that also remembers the mixtures it predicted (in its own column order)."""

    def __init__(self, coef: np.ndarray):
        super().__init__(coef)
        self.rows: list[np.ndarray] = []

    def predict(self, W: np.ndarray) -> np.ndarray:
        self.rows.append(np.array(W))
        return super().predict(W)


def regressor(base: dict[str, float], members: list[dict[str, float]] = (), record: bool = False) -> FittedRegressor:
    domains = ["math", "books", "web", "wiki", "code"]
    vec = lambda c: np.array([c.get(d, 0.0) for d in domains])  # noqa: E731
    return FittedRegressor(
        domains,
        "loss",
        "linear",
        (Recording if record else LinearLoss)(vec(base)),
        [LinearLoss(vec(m)) for m in members],
    )


def swarm(gen, n: int, seed: int) -> np.ndarray:
    """`n` trained-proxy stand-ins from the generator (columns in gen.domains order)."""
    return gen.weights(accepted_draws(gen, np.random.default_rng(seed), n))


UNCAPPED = SampleConfig(method="uniform", max_epochs=None, minimum=1e-3)


def test_trust_region_never_picks_outside_the_radius():
    """The loss falls with math, whose weight the proxies keep low: top-k leaves the swarm, trust stays."""
    gen = generator(UNCAPPED)
    proxies = swarm(gen, 400, seed=3)
    proxies = proxies[proxies[:, gen.domains.index("math")] < 0.1][:40]
    model = regressor({"math": -1.0})
    for radius in (0.25, 0.5, 1.0, 2.0):
        cfg = SearchConfig(
            n_simulations=20_000, top_k=50, chunk_size=4000, rule="trust_region", trust_radius=radius, candidates=20_000
        )
        result = search(model, gen, cfg, seed=0, proxies=proxies)
        limit = radius * np.median(proxy_spacing(proxies))
        assert result.info["radius_l1"] == pytest.approx(limit)
        assert l1_nearest(result.chosen[None, :], proxies)[0][0, 0] <= limit + 1e-12
        assert np.all(l1_nearest(result.top.W, proxies)[0][:, 0] <= limit + 1e-12)  # every averaged mixture too
        assert result.averaged == len(result.top.pred) <= 50
    top = search(model, gen, SearchConfig(n_simulations=20_000, rule="top_k", top_k=50, chunk_size=4000), seed=0)
    assert l1_nearest(top.chosen[None, :], proxies)[0][0, 0] > 2 * np.median(proxy_spacing(proxies))
    few = SearchConfig(
        n_simulations=20_000, top_k=50, chunk_size=4000, rule="trust_region", trust_radius=0.25, candidates=200
    )  # the base's best 200 are all far from the proxies
    with pytest.raises(UserError, match="none of the best 200 mixtures lies within"):
        search(model, gen, few, seed=0, proxies=proxies)
    # On any candidate set, all rows lie in the anchor proxy's ball, best predicted first.
    rng = np.random.default_rng(1)
    for _ in range(20):
        W, P, pred = rng.dirichlet(np.ones(5), 300), rng.dirichlet(np.ones(5), 12), rng.normal(size=300)
        sel = select(SearchConfig(rule="trust_region", top_k=10, trust_radius=rng.uniform(0.3, 2)), W, pred, None, P)
        assert np.all(np.abs(W[sel.rows] - P[sel.anchor]).sum(axis=1) <= sel.radius)
        assert np.all(np.diff(pred[sel.rows]) >= 0) and sel.radius == sel.info["radius_l1"]


def test_lower_confidence_avoids_where_members_disagree():
    """math and wiki both lower the loss, math a little more, but the members disagree about math."""
    gen = generator(UNCAPPED)
    base = {"math": -1.0, "wiki": -0.8}
    members = [{"math": -1.0 + s, "wiki": -0.8} for s in (2.0, -2.0, 1.0, -1.0)]
    model = regressor(base, members)
    pick = {}
    for rule, kappa in (("top_k", 1.0), ("lower_confidence", 0.0), ("lower_confidence", 1.0)):
        cfg = SearchConfig(n_simulations=20_000, top_k=20, chunk_size=5000, rule=rule, kappa=kappa, candidates=5000)
        pick[rule, kappa] = dict(zip(gen.domains, search(model, gen, cfg, seed=0).chosen))
    assert pick["top_k", 1.0]["math"] > 0.7  # RegMix: where the base predicts best
    assert pick["lower_confidence", 0.0]["math"] > 0.7  # kappa 0: the members' mean agrees with the base
    assert pick["lower_confidence", 1.0]["wiki"] > 0.7 and pick["lower_confidence", 1.0]["math"] < 0.1
    # The score is the members' mean + kappa x std, and the averaged rows are its lowest.
    rng = np.random.default_rng(0)
    M, pred = rng.normal(size=(6, 400)), rng.normal(size=400)
    sel = select(SearchConfig(rule="lower_confidence", top_k=7, kappa=2.0), rng.random((400, 3)), pred, M)
    score = M.mean(axis=0) + 2.0 * M.std(axis=0)
    assert np.array_equal(np.sort(sel.rows), np.sort(np.argsort(score)[:7])) and np.allclose(sel.score, score[sel.rows])


def test_band_averages_exactly_the_in_band_candidates():
    rng = np.random.default_rng(0)
    pred, M = rng.normal(size=500), rng.normal(scale=0.3, size=(5, 500))
    for band in (0.0, 0.5, 1.0, 3.0):
        sel = select(SearchConfig(rule="band", band=band, top_k=20), rng.random((500, 3)), pred, M)
        threshold = pred.min() + band * np.median(M.std(axis=0)[np.argsort(pred)[:20]])
        assert sel.info["threshold"] == pytest.approx(threshold)
        assert set(sel.rows) == set(np.flatnonzero(pred <= threshold))
    # In the search: every simulated mixture predicted within the band, also past the candidates.
    gen = generator(UNCAPPED)
    members = [{"math": -1.0 + s, "wiki": -0.8} for s in (0.5, -0.5, 0.2, -0.2)]
    runs = {}
    for candidates in (50, 20_000):  # the band spills past 50 candidates: chunks are drawn again
        model = regressor({"math": -1.0, "wiki": -0.8}, members, record=True)
        cfg = SearchConfig(
            n_simulations=12_000,
            top_k=10,
            chunk_size=3000,
            rule="band",
            band=0.5,
            candidates=candidates,
            spread_simulations=1,
        )
        result = search(model, gen, cfg, seed=4)  # one thread: the chunks are predicted in order
        X = np.concatenate(model.base.rows[:4])  # the 4 chunks, in order (then the candidates again)
        pred = X @ model.base.coef
        inside = pred <= result.info["threshold"]
        assert result.averaged == inside.sum() > 50
        cols = [model.domains.index(d) for d in gen.domains]
        assert np.array_equal(result.chosen, gen.project(X[inside].mean(axis=0)[cols]))
        runs[candidates] = result
    assert runs[50].info.get("drawn_again") and not runs[20_000].info.get("drawn_again")
    assert np.array_equal(runs[50].chosen, runs[20_000].chosen)


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_is_independent_of_threads(rule):
    gen = generator(SampleConfig())
    model = fitted({"web": 0.05, "code": 0.0, "books": 0.1, "wiki": 0.02, "math": 0.08}, n_members=4, noise=0.3)
    proxies = swarm(gen, 30, seed=2)
    cfg = SearchConfig(n_simulations=8000, top_k=10, chunk_size=1500, rule=rule, candidates=700, band=0.5)
    runs = [search(model, gen, cfg, seed=1, threads=t, proxies=proxies) for t in (1, 2, 3)]
    for run in runs[1:]:
        assert np.array_equal(run.chosen, runs[0].chosen) and np.array_equal(run.top.W, runs[0].top.W)
        assert run.info == runs[0].info and run.averaged == runs[0].averaged
    assert runs[0].rule == rule and runs[0].info["averaged"] == runs[0].averaged


def test_mixture_yaml_carries_the_evidence():
    gen = generator(SampleConfig())
    model = fitted({"web": 0.05, "code": 0.0, "books": 0.1, "wiki": 0.02, "math": 0.08}, n_members=4, noise=0.3)
    proxies = swarm(gen, 25, seed=5)
    ids = [f"p{i}" for i in range(len(proxies))]
    cfg = SearchConfig(n_simulations=5000, top_k=10, chunk_size=1000, rule="lower_confidence", candidates=500)
    result = search(model, gen, cfg, seed=1, proxies=proxies)
    out = summary(result, model, baseline_mixtures(SHARE, {}), proxies, ids)
    assert out["rule"]["name"] == "lower_confidence" and out["rule"]["kappa"] == 1.0
    assert out["rule"]["averaged"] == 10 and out["rule"]["candidates"] == 500
    ev = out["evidence"]
    dist = np.abs(proxies - result.chosen).sum(axis=1)
    order = np.argsort(dist)[:3]
    assert [p["id"] for p in ev["nearest_proxies"]] == [ids[i] for i in order]
    assert ev["nearest_l1"] == pytest.approx(dist.min(), abs=1e-6)
    D = np.abs(proxies[:, None] - proxies[None]).sum(axis=2) + np.diag(np.full(len(proxies), np.inf))
    assert ev["proxy_spacing_l1"]["median"] == pytest.approx(np.median(D.min(axis=1)), abs=1e-6)
    assert ev["proxy_spacing_l1"]["n"] == 25
    assert ev["nearest_over_spacing"] == pytest.approx(dist.min() / np.median(D.min(axis=1)), abs=1e-4)
    cols = [gen.domains.index(d) for d in model.domains]
    at = np.array([m.predict(result.chosen[cols][None])[0] for m in model.members])
    assert ev["member_std"] == pytest.approx(at.std()) and ev["member_mean"] == pytest.approx(at.mean())
    assert ev["members"] == 4 and ev["member_std_at_proxies_median"] > 0
    import yaml

    assert yaml.safe_load(yaml.safe_dump(out, sort_keys=False)) == out  # plain types: writes as YAML
    # Without proxies or members, the evidence says only what it knows.
    flat = fitted(dict.fromkeys(SHARE, 0.0))
    bare = summary(
        search(flat, gen, SearchConfig(n_simulations=500, rule="top_k", top_k=5, chunk_size=500), 0), flat, {}
    )
    assert bare["evidence"] == {} and bare["rule"] == {"name": "top_k", "top_k": 5, "candidates": 5, "averaged": 5}


def test_pair_confidence_recovers_the_error_of_a_difference():
    """Out-of-fold errors independent with std sigma: a pair predicted g apart is ordered right
    with probability Phi(g / (sigma sqrt 2)), so the fitted scale is sigma sqrt 2."""
    rng = np.random.default_rng(0)
    predicted = rng.uniform(0, 1, 300)
    true = predicted + rng.normal(0, 0.1, 300)
    judged = pair_confidence(true, predicted, 0.1)
    assert judged["pairs"] == 300 * 299 // 2
    assert judged["scale"] == pytest.approx(0.1 * np.sqrt(2), rel=0.1)
    assert judged["probability"] == pytest.approx(norm.cdf(1 / np.sqrt(2)), abs=0.03)  # 0.76
    assert pair_confidence(true, predicted, -0.1)["probability"] == pytest.approx(1 - judged["probability"])
    assert pair_confidence(true, predicted, 0.0)["probability"] == 0.5
    assert pair_confidence(predicted, predicted, 0.01)["probability"] > 0.999  # every pair ordered right
    assert pair_confidence(true, np.zeros(300), 0.1) == {"gain": 0.1, "probability": 0.5, "pairs": 0, "scale": None}


def confident_regressor(coef: dict[str, float], right: float) -> FittedRegressor:
    """A linear regressor with out-of-fold predictions of 200 proxies, about a share 1 - `right` of
    them with the true loss reversed: a pair scale between perfect and useless."""
    model = fitted(coef)
    predicted = np.linspace(0.0, 2.0, 200)
    true = predicted.copy()
    rng = np.random.default_rng(0)
    swap = rng.random(len(true)) > right
    true[swap] = 2.0 - true[swap]  # reversed: orders wrong against most others
    model.out_of_fold = (true, predicted)
    return model


@pytest.mark.parametrize("min_confidence, proposes", [(0.0, False), (0.5, False), (0.99, True)])
def test_the_prior_guard_proposes_the_prior_and_never_replaces_the_choice(min_confidence, proposes):
    gen = generator(SampleConfig(method="uniform", max_epochs=5.0))
    model = confident_regressor({"web": 1.0, "code": 1.0, "books": 1.0, "wiki": -3.0, "math": 1.0}, right=0.85)
    cfg = SearchConfig(n_simulations=5000, rule="top_k", top_k=20, chunk_size=1000, min_confidence=min_confidence)
    result = search(model, gen, cfg, seed=0)
    judged = result.over_prior
    assert judged["gain"] > 0 and 0.5 < judged["probability"] < 0.99 and judged["min_confidence"] == min_confidence
    out = summary(result, model, baseline_mixtures(SHARE, {}))
    assert out["train"]["wiki"] > 0.4 and out["decision"]["decided_by"] == "rule"  # the regression's choice stays
    guard = out["decision"]["steps"][2]
    assert guard["step"] == "prior_guard" and not guard["changed"] and guard["probability"] == judged["probability"]
    assert out["confidence"]["prior"] == {k: v for k, v in judged.items() if k != "min_confidence"}
    if proposes:
        assert np.array_equal(result.nominees["prior_guard"], gen.prior) and guard["proposed"] == "prior"
        assert out["proposals"]["prior_guard"] == {d: round(w, 6) for d, w in SHARE.items()}
        assert guard["predicted_change"] == judged["gain"] and guard["l1"] > 0.5
    else:
        assert not result.nominees and "proposed" not in guard and out["proposals"] == {}


def test_a_regressor_without_out_of_fold_predictions_is_not_judged():
    gen = generator(SampleConfig())
    model = fitted({"web": 1.0, "code": 0.0, "books": 0.0, "wiki": 0.0, "math": 0.0})
    result = search(
        model, gen, SearchConfig(n_simulations=500, rule="top_k", top_k=5, chunk_size=500, min_confidence=0.99), seed=0
    )
    assert result.over_prior is None and not result.nominees
    out = summary(result, model, baseline_mixtures(SHARE, {}))
    assert out["confidence"] == {} and "not weighed" in out["decision"]["steps"][2]["says"]


def measured_regressor(coef: dict[str, float], seed_std: float | None = 0.1) -> tuple[FittedRegressor, np.ndarray]:
    """A linear regressor with four trained proxies (pure web, code, books, wiki: weights in
    SHARE's order, ids p0-p3) measured and predicted out of fold; returns it and their weights."""
    model = fitted(coef)
    model.out_of_fold = (np.array([1.0, 2.0, 3.0, 0.2]), np.array([1.2, 2.1, 2.7, 1.0]))
    model.proxy_ids, model.seed_std = ["p0", "p1", "p2", "p3"], seed_std
    return model, np.eye(len(SHARE))[:4]


# by hand: out-of-fold errors -0.2, -0.1, 0.3, -0.8: mean square 0.195; seed variance 0.01, so the
# regression's own error variance is 0.185 and the measurement weighs 0.185 / 0.195; p3 (pure wiki)
# is estimated 1.0 + 0.948718 x (0.2 - 1.0) = 0.241026, the lowest
ESTIMATE = 1.0 + 0.185 / 0.195 * (0.2 - 1.0)


@pytest.mark.parametrize("predicted, wins", [(0.25, True), (0.24, False)])
def test_incumbent_shrinks_the_measurement_by_hand(predicted, wins):
    gen = generator(SampleConfig(max_epochs=5.0))  # caps: wiki 0.5 of the large run, so pure wiki is out
    model, proxies = measured_regressor({d: predicted for d in SHARE})  # predicts `predicted` everywhere
    ids, uncapped = ["p0", "p1", "p2", "p3"], dataclasses.replace(gen, caps=np.full(5, gen.units))
    info, proxy = incumbent(model, proxies, ids, uncapped, gen.prior, margin=0.0)
    assert info["proxy"] == "p3" and info["estimate"] == pytest.approx(ESTIMATE)
    assert info["weight_on_measurement"] == pytest.approx(0.185 / 0.195)
    assert info["error_std"] == pytest.approx(0.185**0.5) and info["versus_predicted"] == pytest.approx(predicted)
    assert info["chosen"] is wins and (proxy is not None) is wins
    if wins:
        assert np.array_equal(proxy, proxies[3])
    # within the real caps pure wiki (1.0 > cap 0.5) is not eligible: p0, estimated 1.2 - 0.948718 x 0.2
    info, _ = incumbent(model, proxies, ids, gen, gen.prior)
    assert (
        info["proxy"] == "p0" and info["estimate"] == pytest.approx(1.2 - 0.2 * 0.185 / 0.195) and info["proxies"] == 3
    )


@pytest.mark.parametrize("margin", [0.5, 1.0, 2.0])
def test_incumbent_needs_its_margin_in_the_fits_resolution(margin):
    gen = generator(SampleConfig(max_epochs=None))
    model, proxies = measured_regressor({d: 0.25 for d in SHARE})
    resolution = model.resolution()
    assert resolution == pytest.approx(1.6448536 * model.beats(0.1)["scale"])  # the fit's own unit
    ids = ["p0", "p1", "p2", "p3"]
    for gap, wins in ((margin * resolution * 0.99, False), (margin * resolution * 1.01, True)):
        model.base = fitted({d: ESTIMATE + gap for d in SHARE}).base  # the choice predicted `gap` above p3
        info, proxy = incumbent(model, proxies, ids, gen, gen.prior, margin=margin)
        assert info["margin_nats"] == pytest.approx(margin * resolution) and info["chosen"] is wins
        assert (proxy is not None) is wins


def test_incumbent_matches_rows_by_id_and_says_why_it_is_not_weighed():
    gen = generator(SampleConfig(max_epochs=None))
    model, proxies = measured_regressor({d: 0.25 for d in SHARE})
    info, _ = incumbent(model, proxies[::-1], ["p3", "p2", "p1", "p0"], gen, gen.prior, margin=0.0)
    assert info["proxy"] == "p3" and info["chosen"] and info["versus_predicted"] == pytest.approx(0.25)
    assert (
        "no seed noise"
        in incumbent(
            measured_regressor({d: 1.0 for d in SHARE}, None)[0], proxies, ["p0", "p1", "p2", "p3"], gen, gen.prior
        )[0]["skipped"]
    )
    assert "none of the regressor's" in incumbent(model, proxies, ["a", "b", "c", "d"], gen, gen.prior)[0]["skipped"]
    model.proxy_ids = None
    skipped, proxy = incumbent(model, proxies, ["p0", "p1", "p2", "p3"], gen, gen.prior)
    assert "out-of-fold" in skipped["skipped"] and proxy is None


def test_a_proxy_measured_below_the_prediction_is_proposed_never_chosen_by_the_search():
    gen = generator(SampleConfig(method="uniform", max_epochs=None))
    # the regression prefers code (predicted 0.5 pure); pure wiki measured 0.2, estimated 0.241
    model, proxies = measured_regressor({"web": 2.0, "code": 0.5, "books": 2.0, "wiki": 1.0, "math": 2.0})
    ids = ["p0", "p1", "p2", "p3"]
    cfg = SearchConfig(n_simulations=2000, rule="top_k", top_k=5, chunk_size=1000, incumbent=True, incumbent_margin=0.0)
    result = search(model, gen, cfg, seed=0, proxies=proxies, proxy_ids=ids)
    assert result.chosen[1] > 0.7 and np.array_equal(result.nominees["incumbent"], proxies[3])  # code-heavy, kept
    assert result.incumbent["versus_predicted"] > ESTIMATE
    out = summary(result, model, baseline_mixtures(SHARE, {}), proxies, ids)
    assert (
        out["train"]["code"] > 0.7
        and out["incumbent"]["proxy"] == "p3"
        and out["proposals"]["incumbent"]["wiki"] == 1.0
    )
    assert out["predicted_target"] == pytest.approx(float(model.predict(result.chosen[[4, 2, 0, 3, 1]][None, :])[0]))
    rule, inc, guard = out["decision"]["steps"]
    assert (rule["step"], inc["step"], guard["step"]) == ("rule", "incumbent", "prior_guard")
    assert inc["proposed"] == "incumbent" and not inc["changed"] and out["decision"]["decided_by"] == "rule"
    assert inc["predicted_change"] == pytest.approx(ESTIMATE - result.incumbent["versus_predicted"])
    assert inc["l1"] == pytest.approx(np.abs(result.chosen[[4, 2, 0, 3, 1]] - proxies[3]).sum(), abs=1e-5)
    assert "to be confirmed on fresh seeds" in decision_text(out["decision"])
    # a margin above the gap (in units of the fit's resolution): no proposal
    strict = search(
        model, gen, dataclasses.replace(cfg, incumbent_margin=1000.0), seed=0, proxies=proxies, proxy_ids=ids
    )
    assert (
        "incumbent" not in strict.nominees
        and strict.incumbent["margin_nats"] > strict.incumbent["versus_predicted"] - ESTIMATE
    )
    off = search(model, gen, dataclasses.replace(cfg, incumbent=False), seed=0, proxies=proxies, proxy_ids=ids)
    assert off.incumbent is None and not off.nominees and np.array_equal(off.chosen, result.chosen)
    plain = summary(off, model, baseline_mixtures(SHARE, {}))
    assert "incumbent" not in plain and plain["decision"]["steps"][1]["says"].startswith("off")


def test_a_proxy_measured_above_the_prediction_proposes_nothing():
    gen = generator(SampleConfig(method="uniform", max_epochs=None))
    model, proxies = measured_regressor({"web": 2.0, "code": -1.0, "books": 2.0, "wiki": 1.0, "math": 2.0})
    result = search(
        model,
        gen,
        SearchConfig(n_simulations=2000, rule="top_k", top_k=5, chunk_size=1000, incumbent=True, incumbent_margin=0.0),
        seed=0,
        proxies=proxies,
        proxy_ids=["p0", "p1", "p2", "p3"],
    )
    assert not result.nominees and result.chosen[1] > 0.7 and result.incumbent["chosen"] is False
    assert result.incumbent["versus_predicted"] < ESTIMATE


def test_band_with_the_prior_penalty_reads_sigma_where_the_members_scored():
    """band's sigma is the members' median std at the base's best top_k, the rows they scored, also
    when the prior penalty reorders the candidates; the band then holds every simulated mixture whose
    penalised score is within it, also past the candidates."""
    gen = generator(UNCAPPED)
    members = [{"math": -1.0 + s, "wiki": -0.8} for s in (0.5, -0.5, 0.2, -0.2)]
    model = regressor({"math": -1.0, "wiki": -0.8}, members, record=True)
    cfg = SearchConfig(
        n_simulations=12_000, top_k=10, chunk_size=3000, rule="band", band=0.5, candidates=50, prior_penalty=0.3
    )
    result = search(model, gen, cfg, seed=4)
    assert np.isfinite(result.info["sigma"]) and result.info.get("drawn_again")
    cols = [model.domains.index(d) for d in gen.domains]
    X = np.concatenate(model.base.rows[:4])[:, cols]  # the 4 chunks, in the generator's columns
    score = X @ model.base.coef[cols] + 0.3 * kl_to_prior(X, gen.prior)
    inside = score <= result.info["threshold"]
    assert result.averaged == inside.sum() > 50
    assert np.allclose(result.chosen, gen.project(X[inside].mean(axis=0)))


def test_the_prior_penalty_pulls_the_choice_toward_the_prior():
    gen = generator(SampleConfig(method="uniform", max_epochs=None))
    model = fitted({"web": 1.0, "code": 1.0, "books": 1.0, "wiki": 0.7, "math": 1.0})  # wiki a little better
    cfg = SearchConfig(n_simulations=5000, rule="top_k", top_k=20, chunk_size=1000)
    free = search(model, gen, cfg, seed=0).chosen
    pulled = search(model, gen, dataclasses.replace(cfg, prior_penalty=1.0), seed=0).chosen
    assert kl_to_prior(pulled[None, :], gen.prior)[0] < kl_to_prior(free[None, :], gen.prior)[0]
    assert kl_to_prior(gen.prior[None, :], gen.prior)[0] == pytest.approx(0.0)
    assert kl_to_prior(np.array([[0.5, 0.5]]), np.array([0.25, 0.75]))[0] == pytest.approx(
        0.5 * np.log(2) + 0.5 * np.log(2 / 3)
    )


RELEASED = REPO.parent / "shared" / "regmix_data"


def bench_json(module: str, *args: str) -> dict:
    """The last line of a replay benchmark run on one seed of pile_cc and one random target."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            f"benchmarks.{module}",
            "--released",
            str(RELEASED),
            "--seeds",
            "1",
            "--targets",
            "pile_cc",
            "--random",
            "1",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # about a minute of LightGBM fits
@pytest.mark.skipif(not (RELEASED / "train_mixture_1m.csv").exists(), reason="RegMix's released CSVs not in ../shared")
def test_bench_confidence_prints_json_last():
    result = bench_json("bench_confidence", "--sizes", "32")
    assert result["runs"] == 2 and set(result["targets"]) == {"pile_cc", "random_0"}
    assert [row["min_confidence"] for row in result["fallback"]] == [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
    assert sum(row["runs"] for row in result["calibration"]) == 2
    for run in result["per_run"]:
        assert 0 <= run["probability"] <= 1 and run["pairs"] > 0 and run["best"] <= min(run["pick"], run["reference"])


@pytest.mark.skipif(not (RELEASED / "train_mixture_1m.csv").exists(), reason="RegMix's released CSVs not in ../shared")
def test_bench_decision_prints_json_last():
    result = bench_json("bench_decision", "--noise", "0.05", "--seeds", "1", "--random", "0", "--targets", "mean,arxiv")
    assert result["targets"] == ["mean"]  # arxiv's best test proxy is a corner: not replayed
    (row,) = result["rows"]
    assert row["noise"] == 0.05 and row["runs"] == 1 and row["rule"]["minus_rule"] == 0
    for arm in ("rule", "rule_kl0.1", "incumbent_m0", "best_proxy", "verified_lowest", "verified_welch"):
        assert row[arm]["regret"] >= 0
    assert row["verified_welch_replaced"] <= row["verified_lowest_replaced"] + 1


def test_committed_decision_record_backs_the_defaults():
    """The search's defaults are what benchmarks/results/decision.json measured: no gain, no step."""
    record = json.loads((REPO / "benchmarks/results/decision.json").read_text())
    assert len(record["targets"]) >= 6 and {row["noise"] for row in record["rows"]} == {0.03, 0.1}
    defaults = SearchConfig()
    for row in record["rows"]:
        # the prior penalty never lowered the regret by more than its standard error: off
        assert all(
            row[f"rule_kl{lam:g}"]["minus_rule"] > -row[f"rule_kl{lam:g}"]["minus_rule_se"] for lam in (0.01, 0.03, 0.1)
        )
        # the incumbent at its margin: within noise of the rule alone, so off
        assert abs(row["incumbent_m1"]["minus_rule"]) < 2 * row["incumbent_m1"]["minus_rule_se"]
        # verifying on fresh seeds lowered the regret by more than 1.5 standard errors: on
        assert row["verified_welch"]["minus_rule"] < -1.5 * row["verified_welch"]["minus_rule_se"]
    assert defaults.prior_penalty == 0 and defaults.incumbent is False and defaults.min_confidence == 0
