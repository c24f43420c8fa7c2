"""The fitted regressor (what search and evaluate predict with), and how it is fitted and scored.

Honesty rule: early stopping, cross-validation folds and bootstrap resamples are drawn from the
training proxies only; eval sets are predicted once, after fitting, and never influence it.
(RegMix's notebook early-stops on its test set, which flatters its correlations.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Protocol

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.stats import norm, pearsonr, spearmanr
from sklearn.model_selection import KFold

from regmix.choose.regression.lightgbm import LightGBM
from regmix.choose.regression.models import Model, make_model
from regmix.choose.regression.proxies import ProxyTable
from regmix.choose.regression.terms import TermSum, fitted_terms, term_sum
from regmix.config import RegressionConfig
from regmix.errors import UserError
from regmix.progress import progress
from regmix.target import Target


class Predictor(Protocol):
    """Anything that predicts the target loss of mixtures (rows of W)."""

    def predict(self, W: np.ndarray) -> np.ndarray: ...


@dataclass
class FittedRegressor:
    """A fitted regressor: the model `search` predicts through, plus its bootstrap refits."""

    domains: list[str]  # column order of W
    target: str  # the name of what it predicts (lower is better)
    model: str  # regressor kind
    base: Model  # the regressor fitted on all training proxies
    members: list[Model] = field(default_factory=list)  # bootstrap refits
    # the training proxies' true target and their cross-validated predictions (what `beats` reads)
    out_of_fold: Optional[tuple[np.ndarray, np.ndarray]] = None
    proxy_ids: Optional[list[str]] = None  # the ids of the out-of-fold rows (what `search.incumbent` reads)
    seed_std: Optional[float] = None  # the proxies' seed noise of the target (from the replicates)

    def _check(self, W: np.ndarray) -> np.ndarray:
        W = np.asarray(W, dtype=float)
        if W.ndim != 2 or W.shape[1] != len(self.domains):
            raise UserError(
                f"expected mixtures of shape [n, {len(self.domains)}] ({', '.join(self.domains)}), got {W.shape}"
            )
        return W

    def predict(self, W: np.ndarray) -> np.ndarray:
        """Predicted target loss of each mixture (rows of W, columns in `domains` order)."""
        return self.base.predict(self._check(W))

    def spread(self, W: np.ndarray) -> np.ndarray:
        """Standard deviation of the bootstrap members' predictions (zeros without members)."""
        W = self._check(W)
        if not self.members:
            return np.zeros(len(W))
        return np.std([m.predict(W) for m in self.members], axis=0)

    def beats(self, gain: float) -> Optional[dict[str, Any]]:
        """How often a mixture predicted `gain` nats lower than another truly is lower, judged on
        the out-of-fold predictions of the training proxies (None without them): see `pair_confidence`."""
        return None if self.out_of_fold is None else pair_confidence(*self.out_of_fold, gain)

    def resolution(self) -> Optional[float]:
        """The smallest predicted difference that is real with probability RESOLVED (nats), judged on the
        out-of-fold predictions; None without them. The unit every step that overrides the fit is held to."""
        if self.out_of_fold is None:
            return None
        scale, _ = pair_scale(*self.out_of_fold)
        return None if scale is None else float(norm.ppf(RESOLVED) * scale)

    def compile(self) -> None:
        """A LightGBM base (or a term-by-term base's LightGBM terms) predicts through native code from
        now on (its bootstrap members stay with LightGBM: search runs them on a small prefix of the
        pool only)."""
        if isinstance(self.base, (LightGBM, TermSum)):
            self.base.compile()


def predict_mixtures(regressor: FittedRegressor, mixtures: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The predicted target of named mixtures given as {domain: weight} (a missing domain weighs 0)."""
    if not mixtures:
        return {}
    for name, mixture in mixtures.items():
        unknown = sorted(set(mixture) - set(regressor.domains))
        if unknown:
            raise UserError(
                f"mixture {name!r}: domain(s) {unknown} unknown to the regressor, "
                f"fitted on {', '.join(regressor.domains)}: re-run the fit stage (dvc repro fit)"
            )
    W = np.array([[m.get(d, 0.0) for d in regressor.domains] for m in mixtures.values()], dtype=float)
    return dict(zip(mixtures, map(float, regressor.predict(W))))


def fit_regressor(
    W: np.ndarray, y: np.ndarray, domains: list[str], target: Target, cfg: RegressionConfig, seed: int
) -> FittedRegressor:
    """Fit on all rows, then `cfg.n_bootstrap` refits on seeded resamples of the same rows."""
    base = make_model(cfg.model, cfg.params).fit(W, y, seed)
    rng = np.random.default_rng(seed)
    members = []
    for i in progress(range(cfg.n_bootstrap), desc="bootstrap", disable=cfg.n_bootstrap == 0):
        rows = rng.integers(0, len(y), len(y))
        members.append(make_model(cfg.model, cfg.params).fit(W[rows], y[rows], seed + 1 + i))
    return FittedRegressor(list(domains), target.name, cfg.model, base, members)


def cross_validate(W: np.ndarray, y: np.ndarray, cfg: RegressionConfig, seed: int) -> np.ndarray:
    """Out-of-fold predictions of a seeded k-fold split; each fold fits on the others alone."""
    if cfg.cv_folds < 2:
        raise UserError(f"regression.cv_folds must be at least 2, got {cfg.cv_folds}")
    if len(y) < cfg.cv_folds:
        raise UserError(f"{len(y)} proxies are fewer than regression.cv_folds={cfg.cv_folds}")
    predicted = np.empty_like(y, dtype=float)
    folds = KFold(cfg.cv_folds, shuffle=True, random_state=seed).split(W)
    for k, (train, held) in enumerate(progress(list(folds), desc="cv folds")):
        predicted[held] = make_model(cfg.model, cfg.params).fit(W[train], y[train], seed + k).predict(W[held])
    return predicted


def cross_validate_target(
    W: np.ndarray,
    y: np.ndarray,
    scores: pd.DataFrame,
    columns: Mapping[str, float] | None,
    target: Target,
    cfg: RegressionConfig,
    seed: int,
) -> np.ndarray:
    """The target's out-of-fold predictions: each term cross-validated on the same folds and combined
    as the target combines measured terms where `columns` (`fitted_terms`) names them, else `y`'s."""
    if not columns:
        return cross_validate(W, y, cfg, seed)
    terms = np.column_stack([cross_validate(W, scores[c].to_numpy(float), cfg, seed) for c in columns])
    return term_sum(target, dict.fromkeys(columns)).combine(terms)


def fit_terms(
    W: np.ndarray,
    scores: pd.DataFrame,
    columns: Mapping[str, float],
    target: Target,
    domains: list[str],
    cfg: RegressionConfig,
    seed: int,
) -> FittedRegressor:
    """The target's regressor, one per term: each fitted (with the same bootstrap rows) on its own scores."""
    fitted = {c: fit_regressor(W, scores[c].to_numpy(float), domains, target, cfg, seed) for c in columns}
    base = term_sum(target, {c: f.base for c, f in fitted.items()})
    members = [term_sum(target, dict(zip(fitted, ms))) for ms in zip(*(f.members for f in fitted.values()))]
    return FittedRegressor(list(domains), target.name, cfg.model, base, members)


def scores(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Rank and linear correlation, (root) mean squared error and size of one evaluated set."""
    constant = np.ptp(true) == 0 or np.ptp(predicted) == 0
    nan = float("nan")
    mse = float(np.mean((true - predicted) ** 2))
    return {
        "spearman": nan if constant else float(spearmanr(true, predicted)[0]),
        "pearson": nan if constant else float(pearsonr(true, predicted)[0]),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "n": int(len(true)),
    }


def pair_scale(true: np.ndarray, predicted: np.ndarray) -> tuple[float | None, int]:
    """The error of a predicted difference, from every pair of proxies and their out-of-fold predictions.

    A pair predicted g apart is ordered right with probability Phi(g / scale); `scale` is fitted
    by maximum likelihood to which pairs the folds ordered right. It counts the regression's errors
    where a choice needs them, on differences (errors two mixtures share cancel), unlike
    1.96 x sqrt(2) x RMSE. Returns (scale, pairs); scale None when every prediction ties.
    """
    true, predicted = np.asarray(true, dtype=float), np.asarray(predicted, dtype=float)
    i, j = np.triu_indices(len(true), 1)
    gaps = np.abs(predicted[i] - predicted[j])
    right = (np.sign(predicted[i] - predicted[j]) == np.sign(true[i] - true[j]))[gaps > 0]
    gaps = gaps[gaps > 0]  # tied predictions order nothing
    if not len(gaps):
        return None, 0

    def minus_log_likelihood(log_scale: float) -> float:
        z = gaps / np.exp(log_scale)
        return -float(np.sum(np.where(right, norm.logcdf(z), norm.logsf(z))))

    typical = float(np.log(np.median(gaps)))
    fitted = minimize_scalar(minus_log_likelihood, bounds=(typical - 12, typical + 12), method="bounded")
    return float(np.exp(fitted.x)), int(len(gaps))


def pair_confidence(true: np.ndarray, predicted: np.ndarray, gain: float) -> dict[str, Any]:
    """The probability that a mixture predicted `gain` nats below another has the lower true loss:
    Phi(gain / scale) (`pair_scale`); a gain of 0 is a coin toss. It does not see the search's
    selection: the best of many predictions is optimistic, so a choice's gain is judged as if it
    were a random pair's."""
    scale, pairs = pair_scale(true, predicted)
    probability = 0.5 if scale is None else float(norm.cdf(gain / scale))
    return {"gain": float(gain), "probability": probability, "pairs": pairs, "scale": scale}


def gain_text(judged: Mapping[str, Any]) -> str:
    """`pair_confidence`'s verdict on a predicted gain over the prior, in words."""
    return (
        f"predicted {judged['gain']:.3f} nats below the prior, a gain that is real with probability "
        f"{judged['probability']:.1%} (fitted to how the cross-validation ordered {judged['pairs']:,} pairs "
        "of proxies)"
    )


RESOLVED = 0.95  # a predicted difference is resolved when it is real with at least this probability


def resolved_text(r: Mapping[str, Any]) -> str:
    """`resolution`'s smallest resolved difference, in words."""
    if r.get("smallest_resolved_difference") is None:
        return "The cross-validation predicted every proxy alike: no predicted difference is resolved"
    return (
        f"Predicted differences below {r['smallest_resolved_difference']:.2f} nats are real with less than "
        f"{RESOLVED:.0%} probability (fitted to how the cross-validation ordered {r['pairs']:,} pairs of proxies)"
    )


def resolution(report: FitReport, seed_std: float | None) -> dict[str, Any]:
    """What the regression can tell apart: the smallest predicted difference that is real with
    probability RESOLVED (`pair_scale` x 1.645); the proxies' seed noise is the floor under it."""
    scale, pairs = pair_scale(*report.regressor.out_of_fold)
    out = {
        "cv_rmse": report.metrics["cv"]["rmse"],
        "pair_scale": scale,
        "pairs": pairs,
        "smallest_resolved_difference": None if scale is None else float(norm.ppf(RESOLVED) * scale),
    }
    if seed_std is not None:
        out["seed_std"] = seed_std
        out["rmse_over_seed_std"] = float(out["cv_rmse"] / seed_std) if seed_std > 0 else None
    return out


def record_seed_noise(report: FitReport, seed_std: float | None) -> None:
    """The proxies' seed noise of the target onto the regressor (what `search.incumbent` weighs a
    measurement by) and the fit's `resolution` beside it (None: no replicates)."""
    report.regressor.seed_std = seed_std
    report.metrics["resolution"] = resolution(report, seed_std)


def predict_seconds(regressor: FittedRegressor, n_rows: int = 200_000, seed: int = 0) -> float:
    """Seconds to predict 1M uniformly drawn mixtures, extrapolated from `n_rows`."""
    W = np.random.default_rng(seed).dirichlet(np.ones(len(regressor.domains)), n_rows)
    start = time.perf_counter()
    regressor.predict(W)
    return (time.perf_counter() - start) * 1_000_000 / n_rows


@dataclass
class FitReport:
    regressor: FittedRegressor
    metrics: dict[str, Any]
    predictions: pd.DataFrame  # set, id, true, predicted


def fit_and_report(
    train: ProxyTable, evals: dict[str, ProxyTable], cfg: RegressionConfig, target: Target, seed: int
) -> FitReport:
    """Cross-validate on `train`, fit on all of it, then score each eval set (never seen before)."""
    y = train.target_values(target)
    W = train.weights
    # Read every eval set before fitting, so a bad file fails fast.
    eval_data = {name: (t.aligned(train.domains), t.target_values(target), t.ids) for name, t in evals.items()}
    columns = fitted_terms(target, train.scores, train.source, cfg)
    oof = cross_validate_target(W, y, train.scores, columns, target, cfg, seed)
    if columns:
        regressor = fit_terms(W, train.scores, columns, target, train.domains, cfg, seed)
    else:
        regressor = fit_regressor(W, y, train.domains, target, cfg, seed)
    regressor.out_of_fold, regressor.proxy_ids = (y, oof), list(train.ids)
    metrics: dict[str, Any] = {
        "model": cfg.model,
        "target": regressor.target,
        "per_term": list(columns or ()),
        "n_train": len(y),
        "cv": {**scores(y, oof), "folds": cfg.cv_folds},
    }
    rows = [pd.DataFrame({"set": "cv", "id": train.ids, "true": y, "predicted": oof})]
    for name, (W_eval, y_eval, ids) in eval_data.items():
        predicted = regressor.predict(W_eval)
        metrics[name] = scores(y_eval, predicted)
        rows.append(pd.DataFrame({"set": name, "id": ids, "true": y_eval, "predicted": predicted}))
    metrics["fitted"] = regressor.base.info()
    metrics["n_bootstrap"] = len(regressor.members)
    return FitReport(regressor, metrics, pd.concat(rows, ignore_index=True))
