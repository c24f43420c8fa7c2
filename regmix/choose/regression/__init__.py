"""Regress a target validation loss on mixture weights; score it only on data it never saw.

Five regressors share one small interface (`fit(W, y, seed)`, `predict(W)`, `info()`,
`effects()`, `state()`): `lightgbm` (RegMix's recipe), `linear` (OLS / ridge), `loglinear`
(loss = c + k exp(t.r), the Data Mixing Laws form), `gp` (Gaussian process) and `ensemble`
(the mean of several). A `FittedRegressor` wraps the fitted model with its column order, its
target and optional bootstrap refits; it is what search and evaluate load.

The files:
  proxies.py   the proxies to learn from: ProxyTable, results/proxies.csv, RegMix's released CSVs
  lightgbm.py  LightGBM, early-stopped on training proxies only
  compiled.py  LightGBM trees as lleaves machine code, cached per model and CPU outside data/
  models.py    linear, loglinear, GP, ensemble, and the registry (make_model, restore_model)
  fitted.py    FittedRegressor, the Predictor protocol, fitting, CV, scores, predict_mixtures
  terms.py     TermSum: a target of several terms fitted term by term (`regression.per_term`)
  storage.py   save/load in plain formats (JSON, LightGBM text), checked, never code
  figures.py   fit plots and console text
"""

from regmix.choose.regression.figures import describe, domain_curves, plot_fit
from regmix.choose.regression.fitted import (
    FitReport,
    FittedRegressor,
    Predictor,
    cross_validate,
    fit_and_report,
    fit_regressor,
    gain_text,
    pair_confidence,
    pair_scale,
    predict_mixtures,
    predict_seconds,
    record_seed_noise,
    resolution,
    resolved_text,
    scores,
)
from regmix.choose.regression.lightgbm import LightGBM
from regmix.choose.regression.models import MODELS, Ensemble, GaussianProcess, Linear, LogLinear, Model, make_model
from regmix.choose.regression.proxies import ProxyTable, proxy_table, read_proxies, read_released, released_pair
from regmix.choose.regression.storage import load_regressor, save_regressor

__all__ = [
    "Ensemble",
    "FitReport",
    "FittedRegressor",
    "GaussianProcess",
    "LightGBM",
    "Linear",
    "LogLinear",
    "MODELS",
    "Model",
    "Predictor",
    "ProxyTable",
    "cross_validate",
    "describe",
    "domain_curves",
    "fit_and_report",
    "fit_regressor",
    "gain_text",
    "load_regressor",
    "make_model",
    "pair_confidence",
    "pair_scale",
    "plot_fit",
    "predict_mixtures",
    "predict_seconds",
    "proxy_table",
    "read_proxies",
    "read_released",
    "record_seed_noise",
    "released_pair",
    "resolution",
    "resolved_text",
    "save_regressor",
    "scores",
]
