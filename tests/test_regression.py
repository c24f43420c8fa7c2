"""The fit stage: regressors recover known structure, nothing leaks from eval sets, the paper's
Table 2 reproduces, models round-trip, and each bad input is a UserError naming the problem."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import spearmanr

from regmix.config import RegressionConfig, from_dict
from regmix.errors import UserError
from regmix.regression import (ProxyTable, cross_validate, fit_and_report, fit_regressor, load_regressor,
                               make_model, read_proxies, read_released, save_regressor, target_values)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "regmix_data"
DOMAINS = ["web", "code", "books", "wiki", "math"]
COEF = np.array([0.9, -0.4, 0.3, -0.8, 0.1])


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
    return ProxyTable([f"p{i}" for i in range(n)], list(DOMAINS), W, pd.DataFrame(losses), "synthetic")


FAST_LGB = {"n_estimators": 150, "learning_rate": 0.05, "early_stopping_rounds": 20}  # keeps tests quick


def config(model: str = "lightgbm", **kw) -> RegressionConfig:
    """The preset conf/regression/<model>.yaml, with overrides."""
    preset = yaml.safe_load((REPO / "conf/regression" / f"{model}.yaml").read_text())
    return from_dict(RegressionConfig, {**preset, **kw}, "regression.")


def fast(**kw) -> RegressionConfig:
    """The lightgbm preset with fewer, larger boosting steps."""
    return config(params={**config().params, **FAST_LGB}, **kw)


# ----------------------------------------------------------------- regressors
@pytest.mark.parametrize("model, kind, floor", [("linear", "linear", 0.99), ("loglinear", "exp", 0.99),
                                                  ("gp", "linear", 0.98), ("lightgbm", "linear", 0.9)])
def test_each_regressor_recovers_the_ranking(model, kind, floor):
    train, fresh = table(150, 0, kind=kind), table(200, 1, kind=kind)
    y, y_fresh = target_values(train, "web"), target_values(fresh, "web")
    params = {**config(model).params, **(FAST_LGB if model == "lightgbm" else {})}
    predicted = make_model(model, params).fit(train.weights, y, 0).predict(fresh.weights)
    assert spearmanr(predicted, y_fresh)[0] > floor


def test_linear_recovers_coefficients_and_loglinear_the_exponent():
    train = table(400, 0, noise=0.0)
    fitted = make_model("linear", {}).fit(train.weights, target_values(train, "web"), 0)
    # Weights sum to 1, so coefficients are defined up to a constant shift.
    assert np.allclose(fitted.effects() - fitted.effects().mean(), 0.1 * (COEF - COEF.mean()), atol=1e-8)
    exp = table(400, 0, noise=0.0, kind="exp")
    log = make_model("loglinear", {}).fit(exp.weights, target_values(exp, "web"), 0)
    assert np.allclose(log.effects() - log.effects().mean(), COEF - COEF.mean(), atol=1e-8)


def test_gp_gives_a_predictive_std():
    train = table(120, 0)
    gp = make_model("gp", {}).fit(train.weights, target_values(train, "web"), 0)
    far = np.eye(len(DOMAINS))  # corners of the simplex: far from Dirichlet(0.7) draws on average
    assert (gp.predict_std(train.weights[:5]) >= 0).all() and gp.predict_std(far).shape == (len(DOMAINS),)


def test_targets_mean_and_weighted():
    t = table(50, 0)
    assert np.allclose(target_values(t, "mean"), t.losses.mean(axis=1))
    assert np.allclose(target_values(t, {"web": 3, "code": 1}), 0.75 * t.losses["web"] + 0.25 * t.losses["code"])


def test_ensemble_averages_its_members():
    t = table(120, 0)
    y = target_values(t, "web")
    ens = make_model("ensemble", {"linear": {}, "loglinear": {}}).fit(t.weights, y, 0)
    parts = [make_model(m, {}).fit(t.weights, y, 0).predict(t.weights) for m in ("linear", "loglinear")]
    assert np.allclose(ens.predict(t.weights), np.mean(parts, axis=0))


def test_lightgbm_handles_a_handful_of_proxies():
    t = table(8, 0)
    y = target_values(t, "web")
    model = make_model("lightgbm", fast().params).fit(t.weights, y, 0)
    assert not model.early_stopped  # 8 proxies: nothing held out, but trees still split
    assert np.ptp(model.predict(t.weights)) > 0


# --------------------------------------------------------------------- honesty
def test_eval_labels_never_influence_the_fit():
    train, held = table(120, 0), table(60, 1)
    shuffled = ProxyTable(held.ids, held.domains, held.weights,
                          held.losses.sample(frac=1, random_state=0).reset_index(drop=True), "shuffled")
    cfg = fast(n_bootstrap=2)
    a = fit_and_report(train, {"held": held}, cfg, "web", 0)
    b = fit_and_report(train, {"held": shuffled}, cfg, "web", 0)
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
    fit_and_report(train, {"held": held}, fast(n_bootstrap=0), "web", 0)
    assert seen, "early stopping was not used"
    rows = {tuple(r) for r in train.weights}
    assert all(tuple(r) in rows for v in seen for r in v)


def test_cv_folds_are_seeded():
    t = table(60, 0)
    y = target_values(t, "web")
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
    assert len(train.ids) == 512 and len(test.ids) == 256 and "pile_cc" in train.losses
    fitted = make_model(model, config(model).params).fit(train.weights, target_values(train, "pile_cc"), 0)
    rho = spearmanr(fitted.predict(test.aligned(train.domains)), target_values(test, "pile_cc"))[0]
    assert abs(rho - reported) < 0.005, rho


def test_released_pairs_join_on_index_values(tmp_path):
    mix = pd.DataFrame({"train_the_pile_pile_cc": [0.2, 0.5, 0.9], "train_the_pile_github": [0.8, 0.5, 0.1]})
    loss = pd.DataFrame({"metric/the_pile_pile_cc_val_loss": [3.0, 2.0, 1.0]})
    mix.to_csv(tmp_path / "m.csv")  # unnamed index column, from 0
    loss.index = [2, 1, 0]  # same ids, other order
    loss.rename_axis("index").to_csv(tmp_path / "l.csv")
    t = read_released(tmp_path / "m.csv", tmp_path / "l.csv")
    assert t.domains == ["pile_cc", "github"]
    assert np.allclose(target_values(t, "pile_cc"), [1.0, 2.0, 3.0])


# ------------------------------------------------------------- members, save/load
def test_bootstrap_members_and_round_trip(tmp_path):
    t = table(80, 0)
    reg = fit_regressor(t.weights, target_values(t, "web"), t.domains, "web", config("linear", n_bootstrap=3), 0)
    W = mixtures(50, 5)
    assert len(reg.members) == 3 and (reg.spread(W) > 0).all()
    assert not np.allclose(reg.members[0].predict(W), reg.predict(W))
    save_regressor(reg, tmp_path / "regression")
    back = load_regressor(tmp_path / "regression")
    assert back.domains == t.domains and back.target == "web" and len(back.members) == 3
    assert np.array_equal(back.predict(W), reg.predict(W))
    assert json.loads((tmp_path / "regression/model.json").read_text())["domains"] == t.domains
    with pytest.raises(UserError, match="shape"):
        back.predict(W[:, :3])


# ------------------------------------------------------------------- bad input
def test_fewer_proxies_than_folds():
    t = table(4, 0)
    with pytest.raises(UserError, match="fewer than regression.cv_folds=5"):
        fit_and_report(t, {}, config("linear"), "web", 0)


def test_target_naming_no_domain():
    with pytest.raises(UserError, match="'webb'.*web"):
        target_values(table(10, 0), "webb")
    with pytest.raises(UserError, match="nope"):
        target_values(table(10, 0), {"web": 1.0, "nope": 1.0})


def test_nan_losses():
    t = table(10, 0)
    t.losses.loc[3, "code"] = np.nan
    with pytest.raises(UserError, match=r"NaN losses .*code \(1 rows\)"):
        target_values(t, "mean")
    assert np.isfinite(target_values(t, "web")).all()  # other domains' NaNs do not matter


def test_mismatched_domains(tmp_path):
    pd.DataFrame({"id": ["a"], "web": [1.0], "loss.web": [3.0], "loss.math": [2.0]}).to_csv(tmp_path / "p.csv")
    with pytest.raises(UserError, match=r"no mixture weight column: \['math'\]"):
        read_proxies(tmp_path / "p.csv")
    pd.DataFrame({"index": [1], "train_the_pile_github": [1.0]}).to_csv(tmp_path / "m.csv", index=False)
    pd.DataFrame({"index": [1], "metric/the_pile_pile_cc_val_loss": [3.0]}).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(UserError, match="pile_cc"):
        read_released(tmp_path / "m.csv", tmp_path / "l.csv")
    other = table(10, 0)
    other.domains = ["web", "code", "books", "wiki", "physics"]
    with pytest.raises(UserError, match=r"missing \['math'\], extra \['physics'\]"):
        fit_and_report(table(20, 1), {"other": other}, config("linear"), "web", 0)


# -------------------------------------------------------------------- the stage
def write_params(folder: Path, **regression) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["regression"].update(regression)
    params.update(target="mean", seed=0)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


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
    monkeypatch.setattr(sys, "argv", ["fit"])
    fit.main()
    metrics = json.loads((tmp_path / "metrics/fit.json").read_text())
    assert metrics["cv"]["n"] == 64 and metrics["cv"]["spearman"] > 0.8 and metrics["target"] == "mean"
    assert metrics["predict_seconds_per_1m"] > 0 and metrics["fitted"]["trees"] <= FAST_LGB["n_estimators"]
    predictions = pd.read_csv(tmp_path / "results/fit_predictions.csv")
    assert list(predictions.columns) == ["set", "id", "true", "predicted"] and len(predictions) == 64
    assert {p.name for p in (tmp_path / "plots/fit").iterdir()} == {"predicted_vs_true.png", "effects.png"}
    assert len(load_regressor(tmp_path / "data/regression").members) == 2

    # --params / --out-dir; a bad target is one clear line and exit code 1
    write_params(tmp_path / "results", model="linear", params={}, cv_folds=3)
    monkeypatch.setattr(sys, "argv", ["fit", "--params", "results/params.yaml", "--out-dir", "other"])
    fit.main()
    assert json.loads((tmp_path / "other/metrics/fit.json").read_text())["cv"]["folds"] == 3
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["target"] = "pile_cc"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(sys, "argv", ["fit"])
    from regmix.files import run_stage

    with pytest.raises(SystemExit) as exit_info:
        run_stage(fit.main)
    assert exit_info.value.code == 1


# ------------------------------------------------------------ compiled LightGBM
def compiled_fit(tmp_path: Path, seed: int = 0):
    """A tiny LightGBM regressor (20 trees, one bootstrap member) saved, so compiled, in tmp_path."""
    pytest.importorskip("lleaves")
    t = table(80, seed)
    params = {**config().params, "n_estimators": 20, "learning_rate": 0.1, "early_stopping_rounds": 0,
              "num_threads": 1}  # two OpenMP threads on 80 rows only wait for each other
    reg = fit_regressor(t.weights, target_values(t, "web"), t.domains, "web", config(params=params, n_bootstrap=1), 0)
    save_regressor(reg, tmp_path)
    return reg


def test_compiled_lightgbm_predicts_as_the_booster_and_round_trips(tmp_path):
    reg = compiled_fit(tmp_path)
    W = mixtures(5000, 5)
    booster = reg.base.booster.predict(W)
    assert np.ptp(booster) > 0 and {"model.txt", "model.o"} <= {p.name for p in tmp_path.iterdir()}
    assert reg.base.compiled is not None  # the fitted regressor switches to the compiled trees too
    assert np.allclose(reg.predict(W), booster, rtol=0, atol=1e-12)
    back = load_regressor(tmp_path)
    assert back.base.compiled is not None and back.members[0].compiled is None  # members keep LightGBM
    assert np.allclose(back.predict(W), booster, rtol=0, atol=1e-12)
    assert np.array_equal(back.spread(W), reg.spread(W))
    assert pickle.loads(pickle.dumps(back)).base.compiled is None  # machine code is never pickled


def test_compiled_lightgbm_falls_back_to_the_booster(tmp_path, monkeypatch, capsys):
    from regmix import regression

    reg = compiled_fit(tmp_path / "a")
    W = mixtures(500, 5)
    expected = reg.base.booster.predict(W)
    (tmp_path / "a/model.o").unlink()
    back = load_regressor(tmp_path / "a")
    assert back.base.compiled is None and np.array_equal(back.predict(W), expected)

    monkeypatch.setattr(regression, "_lleaves", lambda: None)  # lleaves not installed
    save_regressor(back, tmp_path / "b")
    assert not (tmp_path / "b/model.o").exists() and (tmp_path / "b/model.txt").exists()
    assert np.array_equal(load_regressor(tmp_path / "b").predict(W), expected)
    monkeypatch.undo()

    compiled_fit(tmp_path / "c")
    monkeypatch.setattr(regression, "_host_cpu", lambda: "another-cpu +avx")  # the folder was copied elsewhere
    back = load_regressor(tmp_path / "c")
    assert back.base.compiled is None and "compiled for another CPU" in capsys.readouterr().out
    assert np.allclose(back.predict(W), expected, rtol=0, atol=1e-12)


def test_compiled_lightgbm_of_other_trees_is_refused(tmp_path):
    compiled_fit(tmp_path / "a", seed=0)
    compiled_fit(tmp_path / "b", seed=1)
    (tmp_path / "b/model.o").replace(tmp_path / "a/model.o")
    with pytest.raises(UserError, match="model.o does not hold the trees of"):
        load_regressor(tmp_path / "a")
