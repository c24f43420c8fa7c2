"""The fit stage: regressors recover known structure, nothing leaks from eval sets, the paper's
Table 2 reproduces, models round-trip through plain files, a stored file that is not what it
claims is refused unread, and each bad input is a UserError naming the problem."""

from __future__ import annotations

import functools
import json
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from scipy.stats import spearmanr

from regmix.choose.regression import (
    FittedRegressor,
    ProxyTable,
    compiled,
    cross_validate,
    fit_and_report,
    fit_regressor,
    load_regressor,
    make_model,
    pair_scale,
    predict_mixtures,
    read_proxies,
    read_released,
    save_regressor,
)
from regmix.compose import composed
from regmix.config import RegressionConfig, from_dict
from regmix.errors import UserError
from regmix.target import Target

DATA = REPO.parent / "shared" / "regmix_data"
DOMAINS = ["web", "code", "books", "wiki", "math"]
COEF = np.array([0.9, -0.4, 0.3, -0.8, 0.1])
WEB = Target.parse("web")


@pytest.fixture(autouse=True, scope="module")
def lleaves_cache(tmp_path_factory):
    """Compiled trees go to a cache of this module's own, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REGMIX_CACHE", str(tmp_path_factory.mktemp("regmix_cache")))
        yield


def mixtures(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(len(DOMAINS), 0.7), n)


def table(n: int, seed: int, noise: float = 0.002, kind: str = "linear") -> ProxyTable:
    """Synthetic proxies: every domain's loss linear (or exp-linear) in the weights."""
    W = mixtures(n, seed)
    rng = np.random.default_rng(seed + 100)
    signal = W @ COEF
    losses = {d: 3.0 + (i + 1) * 0.1 * signal + noise * rng.normal(size=n) for i, d in enumerate(DOMAINS)}
    if kind == "exp":
        losses = {d: np.exp(1.0 + signal + noise * rng.normal(size=n)) for d in DOMAINS}
    return ProxyTable(
        [f"p{i}" for i in range(n)], list(DOMAINS), W, pd.DataFrame(losses).add_prefix("loss."), "synthetic"
    )


FAST_LGB = {"n_estimators": 150, "learning_rate": 0.05, "early_stopping_rounds": 20}  # keeps tests quick


@functools.cache
def preset(model: str) -> dict:
    """The regression section conf/ composes for regression=<model>."""
    return composed([f"regression={model}"], REPO / "conf")["regression"]


def config(model: str = "lightgbm", **kw) -> RegressionConfig:
    """The preset of `model`, with overrides."""
    return from_dict(RegressionConfig, {**preset(model), **kw}, "regression.")


def fast(**kw) -> RegressionConfig:
    """The lightgbm preset with fewer, larger boosting steps."""
    return config(params={**config().params, **FAST_LGB}, **kw)


# ----------------------------------------------------------------- regressors
@pytest.mark.parametrize(
    "model, kind, floor",
    [("linear", "linear", 0.99), ("loglinear", "exp", 0.99), ("gp", "linear", 0.98), ("lightgbm", "linear", 0.9)],
)
def test_each_regressor_recovers_the_ranking(model, kind, floor):
    train, fresh = table(150, 0, kind=kind), table(200, 1, kind=kind)
    y, y_fresh = train.target_values(WEB), fresh.target_values(WEB)
    params = {**config(model).params, **(FAST_LGB if model == "lightgbm" else {})}
    predicted = make_model(model, params).fit(train.weights, y, 0).predict(fresh.weights)
    assert spearmanr(predicted, y_fresh)[0] > floor


def test_linear_recovers_coefficients_and_loglinear_the_exponent():
    train = table(400, 0, noise=0.0)
    fitted = make_model("linear", {}).fit(train.weights, train.target_values(WEB), 0)
    # Weights sum to 1, so coefficients are defined up to a constant shift.
    assert np.allclose(fitted.effects() - fitted.effects().mean(), 0.1 * (COEF - COEF.mean()), atol=1e-8)
    exp = table(400, 0, noise=0.0, kind="exp")
    log = make_model("loglinear", {}).fit(exp.weights, exp.target_values(WEB), 0)
    assert np.allclose(log.effects() - log.effects().mean(), COEF - COEF.mean(), atol=1e-8)


PURE = np.array([3.2, 2.4, 4.0, 2.9, 5.1])  # each domain's loss when trained on it alone


def simplex_losses(n: int, seed: int, noise: float = 0.002) -> tuple[np.ndarray, np.ndarray]:
    """Mixtures that sum to one and losses linear in them: PURE . w + noise."""
    W = mixtures(n, seed)
    return W, W @ PURE + noise * np.random.default_rng(seed + 100).normal(size=n)


def test_linear_coefficients_are_the_pure_domain_losses():
    W, y = simplex_losses(400, 0)
    fitted = make_model("linear", {}).fit(W, y, 0)
    assert np.allclose(fitted.coef, PURE, atol=0.005)
    assert np.allclose(fitted.effects(), fitted.coef - fitted.coef.mean()) and abs(fitted.effects().sum()) < 1e-12
    scaled = make_model("linear", {}).fit(1.002 * W, y, 0)  # rows that sum to 1.002: the same mixtures
    assert np.allclose(scaled.coef, fitted.coef, rtol=0, atol=1e-12)
    fresh = mixtures(100, 1)
    assert np.allclose(scaled.predict(1.002 * fresh), fitted.predict(fresh), rtol=0, atol=1e-12)
    assert np.array_equal(make_model("linear", {}).fit(W, y, 0).predict(fresh), fitted.predict(fresh))


def test_linear_on_rounded_rows_fits_no_huge_coefficients():
    """RegMix's released rows sum to 0.996-1.003; an intercept fit to them returned 11.3 and -9 to -5."""
    W, y = simplex_losses(400, 0)
    rounded = W * np.random.default_rng(5).uniform(0.997, 1.003, size=(len(W), 1))
    fitted = make_model("linear", {}).fit(rounded, y, 0)
    assert np.allclose(fitted.coef, PURE, atol=0.005)
    assert np.allclose(fitted.predict(rounded), fitted.predict(W), rtol=0, atol=1e-12)


def test_ridge_shrinks_towards_the_mean_coefficient_not_zero():
    from sklearn.linear_model import Ridge

    W, y = simplex_losses(60, 0, noise=0.05)
    fits = [make_model("linear", {"alpha": a}).fit(W, y, 0) for a in (0.0, 0.1, 1.0, 1e9)]
    spreads = [np.linalg.norm(f.effects()) for f in fits]
    assert all(a > b for a, b in zip(spreads, spreads[1:])) and spreads[-1] < 1e-6
    assert np.allclose(fits[-1].coef, y.mean(), atol=1e-6)  # a huge alpha predicts the mean loss
    assert all(abs(f.coef.mean() - fits[0].coef.mean()) < 0.3 for f in fits)
    sk = Ridge(alpha=1.0).fit(W, y)  # rows sum to one: intercept + coefficient per domain
    assert np.allclose(fits[2].coef, sk.intercept_ + sk.coef_, rtol=0, atol=1e-10)
    with pytest.raises(UserError, match="alpha must be >= 0"):
        make_model("linear", {"alpha": -1.0})


def test_loglinear_recovers_the_offset_form():
    c, k, t = 1.8, 0.9, np.array([0.9, -0.3, 0.6, -1.1, 0.4])  # t not centred: k e^s, t - s predict the same
    W = mixtures(400, 0)
    y = c + k * np.exp(W @ t) + 0.001 * np.random.default_rng(3).normal(size=len(W))
    fitted = make_model("loglinear", {}).fit(W, y, 0)
    assert fitted.c == pytest.approx(c, abs=0.01) and fitted.k == pytest.approx(k * np.exp(t.mean()), rel=0.01)
    assert np.allclose(fitted.t, t - t.mean(), atol=0.01) and np.array_equal(fitted.effects(), fitted.t)
    assert fitted.info()["offset_at_bound"] is False and abs(fitted.t.sum()) < 1e-12
    again = make_model("loglinear", {}).fit(1.002 * W, y, 0)
    fresh = mixtures(100, 1)
    assert np.allclose(again.predict(fresh), fitted.predict(fresh), rtol=0, atol=1e-8)
    assert np.array_equal(make_model("loglinear", {}).fit(W, y, 0).predict(fresh), fitted.predict(fresh))
    ridge = make_model("loglinear", {"alpha": 1.0}).fit(W, y, 0)
    assert 0 < np.linalg.norm(ridge.t) < np.linalg.norm(fitted.t)


def test_loglinear_offset_stays_below_the_smallest_loss_and_failures_are_user_errors(monkeypatch):
    W = mixtures(200, 0)
    y = 3.0 + 0.2 * np.exp(2 * W[:, 0])
    y[7] = 2.9  # one loss below the floor the others share: c would rather sit above it
    fitted = make_model("loglinear", {}).fit(W, y, 0)
    assert 0 <= fitted.c < 2.9 and fitted.k > 0 and fitted.info()["offset_at_bound"]
    with pytest.raises(UserError, match="needs positive target losses"):
        make_model("loglinear", {}).fit(W, y - 3, 0)
    monkeypatch.setattr(type(fitted), "max_evaluations", 1)
    with pytest.raises(UserError, match=r"loss = c \+ k exp\(t \. r\) did not converge"):
        make_model("loglinear", {}).fit(W, y, 0)


def test_effects_plot_labels_centred_effects(tmp_path, monkeypatch):
    from regmix.choose.regression import figures

    t = table(60, 0)
    figs = []
    monkeypatch.setattr(figures, "save", lambda fig, path, dpi: figs.append(fig))
    for kind, label in (
        ("linear", "effect on predicted loss, centred"),
        ("loglinear", "effect on log(predicted loss - c), centred"),
    ):
        reg = fit_regressor(t.weights, t.target_values(WEB), t.domains, WEB, config(kind, n_bootstrap=0), 0)
        figures.plot_effects(reg, t.weights, tmp_path / "effects.png")
        assert figs.pop().axes[1].get_xlabel() == label


def test_gp_is_less_certain_far_from_its_training_data():
    train = table(120, 0)
    gp = make_model("gp", {}).fit(train.weights, train.target_values(WEB), 0)
    corners = np.eye(len(DOMAINS))  # far from Dirichlet(0.7) draws
    assert gp.predict_std(corners).min() > gp.predict_std(train.weights[:30]).max()


def test_ensemble_averages_its_members():
    t = table(120, 0)
    y = t.target_values(WEB)
    ens = make_model("ensemble", {"linear": {}, "loglinear": {}}).fit(t.weights, y, 0)
    parts = [make_model(m, {}).fit(t.weights, y, 0).predict(t.weights) for m in ("linear", "loglinear")]
    assert np.allclose(ens.predict(t.weights), np.mean(parts, axis=0))


def test_lightgbm_handles_a_handful_of_proxies():
    t = table(8, 0)
    model = make_model("lightgbm", fast().params).fit(t.weights, t.target_values(WEB), 0)
    assert not model.early_stopped  # 8 proxies: nothing held out, but trees still split
    assert np.ptp(model.predict(t.weights)) > 0


# ---------------------------------------------------------------------- target
def test_targets_mean_and_weighted():
    t = table(50, 0)
    assert np.allclose(t.target_values(Target.parse("mean")), t.losses.mean(axis=1))
    weighted = Target.parse({"web": 3, "code": 1})
    assert weighted.name == "3*web+1*code"
    assert np.allclose(t.target_values(weighted), 0.75 * t.losses["web"] + 0.25 * t.losses["code"])


def test_proxies_ranked_by_measured_target_loss():
    t, target = table(50, 0), Target.parse("mean")
    ranked, values = t.ranked(target), t.target_values(target)
    assert len(ranked) == 50 and ranked[0] == t.best(target)[1]
    order = np.argsort(values)
    assert np.allclose([list(m.values()) for m in ranked[:3]], t.weights[order[:3]])


def test_target_of_named_losses():
    losses = {
        "a": {"loss.alpha": 1.0, "loss.beta": 2.0, "loss.gamma": 4.0},
        "b": {"loss.alpha": 2.0, "loss.beta": 2.0, "loss.gamma": 2.0},
    }
    assert Target.parse("beta").by_name(losses, "runs") == {"a": 2.0, "b": 2.0}
    assert Target.parse("mean").by_name(losses, "runs")["a"] == pytest.approx(7 / 3)
    assert Target.parse({"alpha": 1, "gamma": 3}).by_name(losses, "runs")["a"] == pytest.approx(3.25)


def test_target_naming_no_domain():
    with pytest.raises(UserError, match=r"'webb' .*synthetic.*\['webb'\].*'web'"):
        table(10, 0).target_values(Target.parse("webb"))
    with pytest.raises(UserError, match=r"\['nope'\]; scored: \['alpha'"):
        Target.parse({"alpha": 1.0, "nope": 1.0}).by_name({"a": {"loss.alpha": 1.0}}, "runs")


@pytest.mark.parametrize(
    "value, message",
    [
        ({"web": 1, "code": -1}, "'code': -1}: weights must be finite, >= 0"),
        ({"web": "x"}, "'web': 'x'}: every weight must be a number"),
        ({"web": 0}, "not all zero"),
        (3, "expected a domain"),
    ],
)
def test_bad_target_values(value, message):
    with pytest.raises(UserError, match=message):
        Target.parse(value)


def test_nan_losses():
    t = table(10, 0)
    t.scores.loc[3, "loss.code"] = np.nan
    with pytest.raises(UserError, match=r"NaN scores .*loss.code \(1 rows\)"):
        t.target_values(Target.parse("mean"))
    assert np.isfinite(t.target_values(WEB)).all()  # other domains' NaNs do not matter


# --------------------------------------------------------------------- honesty
def test_eval_labels_never_influence_the_fit():
    train, held = table(120, 0), table(60, 1)
    shuffled = ProxyTable(
        held.ids,
        held.domains,
        held.weights,
        held.scores.sample(frac=1, random_state=0).reset_index(drop=True),
        "shuffled",
    )
    cfg = fast(n_bootstrap=2, cv_folds=3)
    a = fit_and_report(train, {"held": held}, cfg, WEB, 0)
    b = fit_and_report(train, {"held": shuffled}, cfg, WEB, 0)
    W = mixtures(500, 7)
    assert np.array_equal(a.regressor.predict(W), b.regressor.predict(W))
    assert a.metrics["cv"] == b.metrics["cv"] and a.metrics["fitted"] == b.metrics["fitted"]
    assert a.metrics["held"]["spearman"] > 0.8 > abs(b.metrics["held"]["spearman"])


def test_early_stopping_sees_only_training_rows(monkeypatch):
    import lightgbm

    seen = []
    real = lightgbm.train

    def spy(params, train_set, *args, valid_sets=(), **kw):
        seen.extend(np.asarray(v.data) for v in valid_sets)
        return real(params, train_set, *args, valid_sets=valid_sets, **kw)

    monkeypatch.setattr(lightgbm, "train", spy)
    train, held = table(100, 0), table(40, 1)
    fit_and_report(train, {"held": held}, fast(n_bootstrap=0), WEB, 0)
    assert seen, "early stopping was not used"
    rows = {tuple(r) for r in train.weights}
    assert all(tuple(r) in rows for v in seen for r in v)


def test_cv_folds_are_seeded():
    t = table(60, 0)
    y = t.target_values(WEB)
    cfg = config("linear")
    assert np.array_equal(cross_validate(t.weights, y, cfg, 3), cross_validate(t.weights, y, cfg, 3))


# ---------------------------------------------------------------- paper, Table 2
@pytest.fixture(scope="module")
def paper():
    if not (DATA / "train_mixture_1m.csv").exists():
        pytest.skip("released RegMix data not found")
    train = read_released(DATA / "train_mixture_1m.csv", DATA / "train_pile_loss_1m.csv")
    test = read_released(DATA / "test_mixture_1m.csv", DATA / "test_pile_loss_1m.csv")
    return train, test


@pytest.mark.parametrize("model, reported", [("lightgbm", 0.9845), ("linear", 0.9008)])
def test_paper_table2_reproduces(paper, model, reported):
    train, test = paper
    pile_cc = Target.parse("pile_cc")
    assert len(train.ids) == 512 and len(test.ids) == 256 and "pile_cc" in train.losses
    fitted = make_model(model, config(model).params).fit(train.weights, train.target_values(pile_cc), 0)
    rho = spearmanr(fitted.predict(test.aligned(train.domains)), test.target_values(pile_cc))[0]
    assert rho > reported - 0.005, rho  # reproduces the paper or beats it (lightgbm's refit: 0.9904)


def test_paper_linear_coefficients_are_losses_and_the_offset_form_ranks_better(paper):
    train, test = paper
    pile_cc = Target.parse("pile_cc")
    y = train.target_values(pile_cc)
    linear = make_model("linear", config("linear").params).fit(train.weights, y, 0)
    assert 2 < linear.coef.min() and linear.coef.max() < 7  # pure-domain Pile-CC losses; y spans 5.1-6.6
    log = make_model("loglinear", config("loglinear").params).fit(train.weights, y, 0)
    rho = spearmanr(log.predict(test.aligned(train.domains)), test.target_values(pile_cc))[0]
    assert 0 <= log.c < y.min() and log.k > 0 and rho > 0.95, rho


def test_released_pairs_join_on_index_values(tmp_path):
    mix = pd.DataFrame({"train_the_pile_pile_cc": [0.2, 0.5, 0.9], "train_the_pile_github": [0.8, 0.5, 0.1]})
    loss = pd.DataFrame({"metric/the_pile_pile_cc_val_loss": [3.0, 2.0, 1.0]})
    mix.to_csv(tmp_path / "m.csv")  # unnamed index column, from 0
    loss.index = [2, 1, 0]  # same ids, other order
    loss.rename_axis("index").to_csv(tmp_path / "l.csv")
    t = read_released(tmp_path / "m.csv", tmp_path / "l.csv")
    assert t.domains == ["pile_cc", "github"]
    assert np.allclose(t.target_values(Target.parse("pile_cc")), [1.0, 2.0, 3.0])


# ------------------------------------------------------------- members, save/load
KINDS = {
    "lightgbm": FAST_LGB,
    "linear": {},
    "loglinear": {},
    "gp": {},
    "ensemble": {"lightgbm": FAST_LGB, "gp": {}, "loglinear": {}},
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_round_trips_through_plain_files(tmp_path, kind):
    t = table(60, 0)
    reg = fit_regressor(
        t.weights,
        t.target_values(WEB),
        t.domains,
        WEB,
        RegressionConfig(model=kind, params=KINDS[kind], n_bootstrap=2),
        0,
    )
    save_regressor(reg, tmp_path)
    back = load_regressor(tmp_path, WEB, list(reversed(DOMAINS)))  # domains in any order
    W = mixtures(300, 5)
    assert back.domains == t.domains and back.target == "web" and back.model == kind and len(back.members) == 2
    exact = 1e-9 if kind in ("gp", "ensemble") else 0.0  # a GP refits on load
    assert np.allclose(back.predict(W), reg.predict(W), rtol=0, atol=exact)
    assert np.allclose(back.spread(W), reg.spread(W), rtol=0, atol=exact) and (reg.spread(W) > 0).all()
    assert back.base.info() == reg.base.info()
    manifest = json.loads((tmp_path / "model.json").read_text())
    assert manifest["model"] == kind and manifest["domains"] == DOMAINS and manifest["version"] == 1
    stored = {p.name for p in tmp_path.iterdir()}
    assert stored == {"model.json", *manifest["files"]} and not any(n.endswith((".pkl", ".o")) for n in stored)


def test_the_out_of_fold_predictions_travel_with_the_regressor(tmp_path):
    t = table(40, 0)
    report = fit_and_report(t, {}, config("linear", n_bootstrap=0), WEB, 0)
    true, oof = report.regressor.out_of_fold
    cv = report.predictions[report.predictions["set"] == "cv"]
    assert np.array_equal(true, cv["true"]) and np.array_equal(oof, cv["predicted"])
    save_regressor(report.regressor, tmp_path)
    back = load_regressor(tmp_path, WEB)
    assert all(np.array_equal(a, b) for a, b in zip(back.out_of_fold, report.regressor.out_of_fold))
    assert back.beats(0.05) == report.regressor.beats(0.05) and 0.5 < back.beats(0.05)["probability"] <= 1
    assert back.proxy_ids == list(cv["id"]) == t.ids and back.seed_std is None  # no replicates given
    report.regressor.seed_std = 0.12
    save_regressor(report.regressor, tmp_path)
    assert load_regressor(tmp_path, WEB).seed_std == 0.12
    manifest = json.loads((tmp_path / "model.json").read_text())
    del manifest["out_of_fold"]  # as saved by a regressor fitted without its CV
    (tmp_path / "model.json").write_text(json.dumps(manifest))
    assert load_regressor(tmp_path, WEB).beats(0.05) is None


def test_a_target_of_several_terms_is_fitted_term_by_term(tmp_path):
    """`regression.per_term`: one regressor per term, each cross-validated on the fit's folds and fitted
    on its own scores, combined as the target combines measured terms (zmean's scales too); the
    stored regressor predicts the same; a one-term target, or per_term false, is fitted as one number."""
    t = table(40, 0, noise=0.0)
    scores = t.scores.assign(**{"loss.web": t.scores["loss.web"] + 0.5 * t.weights[:, 0] ** 2})  # not linear
    t = ProxyTable(t.ids, t.domains, t.weights, scores, t.source)
    cfg = fast(n_bootstrap=2, cv_folds=3)
    zmean = Target.parse({"aggregate": "zmean", "over": ["web", "code", "math"]}).calibrate(t.scores)
    for target in (Target.parse("mean", domains=DOMAINS), Target.parse({"web": 3, "code": 1}), zmean):
        report = fit_and_report(t, {}, cfg, target, 0)
        columns = target.columns(list(t.scores.columns), "t")
        assert report.metrics["per_term"] == list(columns)
        alone = {c: fit_and_report(t, {}, cfg, Target.parse(c.removeprefix("loss.")), 0) for c in columns}
        W = mixtures(7, 1)
        measured_alike = pd.DataFrame({c: r.regressor.predict(W) for c, r in alone.items()})
        assert np.allclose(report.regressor.predict(W), target.values(measured_alike, "the terms"))
        oof_alike = pd.DataFrame({c: r.regressor.out_of_fold[1] for c, r in alone.items()})
        assert np.allclose(report.regressor.out_of_fold[1], target.values(oof_alike, "the terms"))
        assert len(report.regressor.members) == 2
        save_regressor(report.regressor, tmp_path)
        back = load_regressor(tmp_path, target)
        assert np.array_equal(back.predict(W), report.regressor.predict(W))
        assert np.array_equal(back.spread(W), report.regressor.spread(W))
    mean = Target.parse("mean", domains=DOMAINS)
    whole = fit_and_report(t, {}, fast(n_bootstrap=0, per_term=False), mean, 0)
    assert whole.metrics["per_term"] == [] and whole.regressor.base.kind == "lightgbm"
    assert not np.allclose(whole.regressor.predict(W), fit_and_report(t, {}, cfg, mean, 0).regressor.predict(W))
    assert fit_and_report(t, {}, cfg, WEB, 0).metrics["per_term"] == []


def test_an_older_linear_state_is_refused(tmp_path):
    t = table(40, 0)
    reg = fit_regressor(t.weights, t.target_values(WEB), t.domains, WEB, config("linear", n_bootstrap=0), 0)
    save_regressor(reg, tmp_path)
    manifest = json.loads((tmp_path / "model.json").read_text())
    manifest["base"] = {"kind": "linear", "params": {"alpha": 0.0}, "coefficients": [-9.0] * 5, "intercept": 11.3}
    (tmp_path / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="does not describe a regressor this regmix can load.*re-run the fit stage"):
        load_regressor(tmp_path, WEB)


def test_predict_mixtures_by_domain_name():
    class Sum:
        def predict(self, W):
            return W @ np.array([1.0, 2.0, 3.0])

    reg = FittedRegressor(["gamma", "alpha", "beta"], "mean", "linear", Sum())
    mixes = {"x": {"alpha": 0.5, "beta": 0.5}, "y": {"gamma": 1.0, "alpha": 0.0, "beta": 0.0}}
    assert predict_mixtures(reg, mixes) == pytest.approx({"x": 2.5, "y": 1.0})  # missing gamma weighs 0
    with pytest.raises(UserError, match=r"mixture 'z': domain\(s\) \['delta'\] unknown"):
        predict_mixtures(reg, {"z": {"delta": 1.0}})
    with pytest.raises(UserError, match="shape"):
        reg.predict(np.ones((2, 2)))


# ------------------------------------------------------- refused stored files
class WritesOnLoad:
    """A pickle payload: unpickling it creates `path` (what a hostile model.pkl could do)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


@pytest.fixture
def saved(tmp_path) -> Path:
    t = table(40, 0)
    reg = fit_regressor(
        t.weights,
        t.target_values(WEB),
        t.domains,
        WEB,
        config(params={**config().params, **FAST_LGB}, n_bootstrap=1),
        0,
    )
    save_regressor(reg, tmp_path / "regression")
    return tmp_path / "regression"


def test_the_payload_runs_when_unpickled(tmp_path):
    """Guards the next test: its payload really does create the marker when unpickled."""
    pickle.loads(pickle.dumps(WritesOnLoad(tmp_path / "ran"))).close()
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("name", ["model.pkl", "model.json", "model.txt"])
def test_a_pickle_is_refused_unread(tmp_path, saved, name):
    marker = tmp_path / "ran"
    if name == "model.pkl":  # the older layout: a pickle and no manifest
        (saved / "model.json").unlink()
    (saved / name).write_bytes(pickle.dumps(WritesOnLoad(marker)))
    with pytest.raises(UserError, match=rf"{re.escape(str(saved / name))}\b.*re-run the fit stage"):
        load_regressor(saved, WEB)
    assert not marker.exists()


def test_truncated_changed_or_foreign_files_are_refused(saved):
    manifest = (saved / "model.json").read_text()
    (saved / "model.json").write_text(manifest[: len(manifest) // 2])
    with pytest.raises(UserError, match="model.json is not valid JSON"):
        load_regressor(saved, WEB)
    (saved / "model.json").write_text(json.dumps({"some": "other json"}))
    with pytest.raises(UserError, match="model.json does not describe a fitted regressor"):
        load_regressor(saved, WEB)
    (saved / "model.json").write_text(manifest)
    trees = (saved / "member_1.txt").read_text()
    (saved / "member_1.txt").write_text(trees + "\n")
    with pytest.raises(UserError, match="member_1.txt: its sha256 is not the one model.json records"):
        load_regressor(saved, WEB)
    (saved / "member_1.txt").write_text(trees)
    assert len(load_regressor(saved, WEB).members) == 1


def test_a_regressor_of_another_target_or_domains_is_refused(saved):
    with pytest.raises(UserError, match=r"model.json predicts target 'web', not 'mean'.*re-run the fit stage"):
        load_regressor(saved, Target.parse("mean"))
    with pytest.raises(UserError, match=r"other domains than expected \(missing \['physics'\], extra \['math'\]\)"):
        load_regressor(saved, WEB, ["web", "code", "books", "wiki", "physics"])


# ------------------------------------------------------------------- bad input
def test_fewer_proxies_than_folds():
    t = table(4, 0)
    with pytest.raises(UserError, match="fewer than regression.cv_folds=5"):
        fit_and_report(t, {}, config("linear"), WEB, 0)


def test_mismatched_domains(tmp_path):
    # a set scored without a weight column is a held-out set: its scores are kept, it gets no weight
    pd.DataFrame({"id": ["a"], "web": [1.0], "loss.web": [3.0], "loss.math": [2.0]}).to_csv(
        tmp_path / "p.csv", index=False
    )
    held = read_proxies(tmp_path / "p.csv")
    assert held.domains == ["web"] and list(held.losses.columns) == ["web", "math"]
    pd.DataFrame({"id": ["a"], "web": [1.0]}).to_csv(tmp_path / "q.csv", index=False)
    with pytest.raises(UserError, match="no loss columns"):
        read_proxies(tmp_path / "q.csv")
    other = table(10, 0)
    other.domains = ["web", "code", "books", "wiki", "physics"]
    with pytest.raises(UserError, match=r"missing \['math'\], extra \['physics'\]"):
        fit_and_report(table(20, 1), {"other": other}, config("linear"), WEB, 0)


# -------------------------------------------------------------------- the stage
def write_params(folder: Path, **regression) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["regression"].update(regression)
    params.update(target="mean", seed=0)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


OUTPUTS = ("data/regression", "results/fit.json", "results/fit_predictions.csv", "plots/fit", "metrics/fit.json")


def test_fit_stage_on_proxies_csv(tmp_path, monkeypatch):
    from stages import fit

    t = table(64, 0)
    frame = pd.DataFrame(t.weights, columns=t.domains)
    frame.insert(0, "id", t.ids)
    for d in DOMAINS:
        frame[f"loss.{d}"] = t.losses[d]
    (tmp_path / "results").mkdir()
    frame.to_csv(tmp_path / "results/proxies.csv", index=False)
    write_params(tmp_path, n_bootstrap=2, params={**config().params, **FAST_LGB})
    monkeypatch.chdir(tmp_path)
    frame.iloc[:4].assign(**{f"loss.{d}": frame[f"loss.{d}"].iloc[:4] + 0.01 for d in DOMAINS}).to_csv(
        tmp_path / "results/replicates.csv", index=False
    )  # every pair 0.01 apart: seed std 0.01 / sqrt(2)
    monkeypatch.setattr(sys, "argv", ["fit", "results/proxies.csv", "results/replicates.csv", *OUTPUTS])
    fit.main()
    metrics = json.loads((tmp_path / "results/fit.json").read_text())
    assert metrics["cv"]["n"] == 64 and metrics["cv"]["spearman"] > 0.8 and metrics["target"] == "mean"
    r = metrics["resolution"]
    assert r["seed_std"] == pytest.approx(0.01 / 2**0.5) and r["cv_rmse"] == pytest.approx(metrics["cv"]["rmse"])
    predictions = pd.read_csv(tmp_path / "results/fit_predictions.csv")
    scale, pairs = pair_scale(predictions["true"], predictions["predicted"])
    assert r["pair_scale"] == pytest.approx(scale) and r["pairs"] == pairs == 64 * 63 // 2
    assert r["smallest_resolved_difference"] == pytest.approx(1.6449 * scale, rel=1e-4)  # real with 95%
    assert metrics["per_term"] == [f"loss.{d}" for d in DOMAINS]  # `mean`: one regressor per domain's loss
    assert metrics["predict_seconds_per_1m"] > 0
    assert all(term["trees"] <= FAST_LGB["n_estimators"] for term in metrics["fitted"].values())
    predictions = pd.read_csv(tmp_path / "results/fit_predictions.csv")
    assert list(predictions.columns) == ["set", "id", "true", "predicted"] and len(predictions) == 64
    assert {p.name for p in (tmp_path / "plots/fit").iterdir()} == {"predicted_vs_true.png", "effects.png"}
    assert len(load_regressor(tmp_path / "data/regression", Target.parse("mean"), DOMAINS).members) == 2

    # --params and other output paths; a bad target is one clear line and exit code 1
    write_params(tmp_path / "results", model="linear", params={}, cv_folds=3)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "fit",
            "results/proxies.csv",
            "results/replicates.csv",
            *(f"other/{p}" for p in OUTPUTS),
            "--params",
            "results/params.yaml",
        ],
    )
    fit.main()
    assert json.loads((tmp_path / "other/results/fit.json").read_text())["cv"]["folds"] == 3
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["target"] = "pile_cc"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(sys, "argv", ["fit", "results/proxies.csv", "results/replicates.csv", *OUTPUTS])
    from regmix.files import run_stage

    with pytest.raises(SystemExit) as exit_info:
        run_stage(fit.main)
    assert exit_info.value.code == 1


# ------------------------------------------------------------ compiled LightGBM
def compiled_fit(tmp_path: Path, seed: int = 0) -> FittedRegressor:
    """A tiny LightGBM regressor (20 trees, one bootstrap member), saved to tmp_path and loaded back."""
    pytest.importorskip("lleaves")
    t = table(80, seed)
    params = {
        **config().params,
        "n_estimators": 20,
        "learning_rate": 0.1,
        "early_stopping_rounds": 0,
        "num_threads": 1,
    }  # two OpenMP threads on 80 rows only wait for each other
    reg = fit_regressor(t.weights, t.target_values(WEB), t.domains, WEB, config(params=params, n_bootstrap=1), 0)
    save_regressor(reg, tmp_path)
    return load_regressor(tmp_path, WEB)


def cache_entry(reg: FittedRegressor) -> Path:
    return compiled.cache_folder() / f"{compiled.cache_key(reg.base.booster.model_to_string())}.o"


def test_compiled_lightgbm_predicts_as_the_booster_and_is_cached_outside_data(tmp_path, monkeypatch):
    monkeypatch.setenv("REGMIX_CACHE", str(tmp_path / "cache"))
    reg = compiled_fit(tmp_path / "regression")
    W = mixtures(5000, 5)
    booster = reg.base.booster.predict(W)
    assert reg.base.compiled is None and np.array_equal(reg.predict(W), booster)  # LightGBM until compiled
    reg.compile()
    assert reg.base.compiled is not None and reg.members[0].compiled is None  # members keep LightGBM
    assert np.ptp(booster) > 0 and np.allclose(reg.predict(W), booster, rtol=0, atol=1e-12)
    entry = cache_entry(reg)
    assert entry.parent == tmp_path / "cache/lleaves" and not list((tmp_path / "regression").glob("*.o"))

    built = entry.stat()
    again = load_regressor(tmp_path / "regression", WEB)
    again.compile()  # a cache hit: the object file is loaded, not rebuilt
    assert (entry.stat().st_ino, entry.stat().st_mtime_ns) == (built.st_ino, built.st_mtime_ns)
    assert np.allclose(again.predict(W), booster, rtol=0, atol=1e-12)


def test_a_corrupt_or_foreign_cache_entry_is_rebuilt(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REGMIX_CACHE", str(tmp_path / "cache"))
    other = compiled_fit(tmp_path / "other", seed=1)
    other.compile()
    reg = compiled_fit(tmp_path / "regression")
    reg.compile()
    entry, W = cache_entry(reg), mixtures(500, 5)
    expected = reg.base.booster.predict(W)

    entry.write_bytes(entry.read_bytes()[:100])  # truncated: its sha256 no longer matches
    back = load_regressor(tmp_path / "regression", WEB)
    back.compile()
    assert "rebuilding" in capsys.readouterr().out
    assert np.allclose(back.predict(W), expected, rtol=0, atol=1e-12)

    # Another model's machine code with a matching record: the probe predictions catch it.
    for suffix in (".o", ".sha256"):
        cache_entry(other).with_suffix(suffix).replace(entry.with_suffix(suffix))
    back = load_regressor(tmp_path / "regression", WEB)
    back.compile()
    assert "rebuilding" in capsys.readouterr().out
    assert np.allclose(back.predict(W), expected, rtol=0, atol=1e-12)


def test_compiled_lightgbm_falls_back_and_is_keyed_by_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("REGMIX_CACHE", str(tmp_path / "cache"))
    reg = compiled_fit(tmp_path / "regression")
    W = mixtures(500, 5)
    expected = reg.base.booster.predict(W)
    monkeypatch.setattr(compiled, "lleaves_module", lambda: None)  # lleaves not installed
    reg.compile()
    assert reg.base.compiled is None and np.array_equal(reg.predict(W), expected)
    monkeypatch.undo()

    monkeypatch.setenv("REGMIX_CACHE", str(tmp_path / "cache"))
    reg.compile()
    here = cache_entry(reg)
    monkeypatch.setattr(compiled, "host_cpu", lambda: "another-cpu +avx")  # the same model on another machine
    reg.compile()
    assert cache_entry(reg) != here and cache_entry(reg).exists() and here.exists()
    assert np.allclose(reg.predict(W), expected, rtol=0, atol=1e-12)


def test_lightgbm_refit_trains_on_every_row():
    """Early stopping picks the rounds on 80% of the rows; the refit model is then trained on all
    of them for those rounds (the default), which the 80% model is not."""
    import lightgbm as lgb

    from regmix.choose.regression.lightgbm import LightGBM

    rng = np.random.default_rng(0)
    W = rng.dirichlet(np.ones(4), 60)
    y = W @ np.array([1.0, 2.0, 3.0, 4.0]) + rng.normal(0, 0.05, 60)
    assert from_dict(RegressionConfig, {}).params["refit"] is True
    refit = LightGBM(n_estimators=200, learning_rate=0.1, refit=True).fit(W, y, seed=0)
    kept = LightGBM(n_estimators=200, learning_rate=0.1, refit=False).fit(W, y, seed=0)
    assert refit.early_stopped and refit.best_iteration == kept.best_iteration
    params = refit._params(len(y), 0)
    every_row = lgb.train(params, lgb.Dataset(W, y, params=params), refit.best_iteration)
    assert np.array_equal(refit.predict(W), every_row.predict(W))
    assert not np.array_equal(kept.predict(W), every_row.predict(W))
