"""Regress a target validation loss on mixture weights; score it only on data it never saw.

Four regressors share one small interface (`fit(W, y, seed)`, `predict(W)`, `info()`,
`effects()`): `lightgbm` (RegMix's recipe), `linear` (OLS / ridge), `loglinear`
(loss = exp(b + w.x), the Data Mixing Laws form) and `gp` (Gaussian process), plus `ensemble`
(the mean of several). A `Regressor` wraps the fitted model with its column order, its target
and optional bootstrap refits, and is what the search stage loads.

Honesty rule: early stopping, cross-validation folds and bootstrap resamples are drawn from the
training proxies only; eval sets are predicted once, after fitting, and never influence it.
(RegMix's notebook early-stops on its test set, which flatters its correlations.)
"""

from __future__ import annotations

import functools
import pickle
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr
from sklearn.model_selection import KFold
from tqdm.auto import tqdm

from regmix.config import RegressionConfig
from regmix.errors import UserError
from regmix.tables import LOSS_PREFIX, loss_columns, read_csv, weight_columns

Target = Union[str, dict[str, float]]
PREDICT_THREADS = 2  # the search predicts millions of rows on this many cores
BOOSTER_TEXT, COMPILED = "model.txt", "model.o"  # a saved LightGBM model's trees, and their machine code


# ----------------------------------------------------------------------------- data
@dataclass
class ProxyTable:
    """Mixture weights and per-domain validation losses of a set of trained proxies."""

    ids: list[str]
    domains: list[str]  # weight columns, in the order of W's columns
    weights: np.ndarray  # [n, len(domains)]
    losses: pd.DataFrame  # one column per loss domain (a subset of `domains`), n rows
    source: str  # file name(s), for error messages

    def aligned(self, domains: list[str]) -> np.ndarray:
        """The weights with columns in `domains` order; both sets of domains must agree."""
        missing, extra = sorted(set(domains) - set(self.domains)), sorted(set(self.domains) - set(domains))
        if missing or extra:
            raise UserError(f"{self.source}: mixture domains differ from the training set's "
                            f"(missing {missing}, extra {extra})")
        return self.weights[:, [self.domains.index(d) for d in domains]]


def _check_loss_domains(loss_domains: list[str], domains: list[str], source: str) -> None:
    unknown = sorted(set(loss_domains) - set(domains))
    if unknown:
        raise UserError(f"{source}: losses for domains with no mixture weight column: {unknown} "
                        f"(weight domains: {sorted(domains)})")
    if not loss_domains:
        raise UserError(f"{source}: no loss columns")


def read_proxies(path: str | Path) -> ProxyTable:
    """results/proxies.csv: `id`, one weight column per domain, one `loss.<domain>` per domain."""
    frame = read_csv(path)
    domains = weight_columns(frame)
    losses = frame[loss_columns(frame)].rename(columns=lambda c: c[len(LOSS_PREFIX):])
    _check_loss_domains(list(losses.columns), domains, str(path))
    ids = frame["id"].astype(str).tolist() if "id" in frame else [str(i) for i in range(len(frame))]
    return ProxyTable(ids, domains, frame[domains].to_numpy(float), losses.astype(float), str(path))


# RegMix's released CSVs: `train_the_pile_<domain>` weights, `metric/the_pile_<domain>_val_loss` losses.
_MIXTURE_COLUMN = re.compile(r"^train_(?:the_pile_)?(.+)$")
_LOSS_COLUMN = re.compile(r"^metric/(?:the_pile_)?(.+)_val_loss$")


def _read_indexed(path: str | Path, pattern: re.Pattern) -> pd.DataFrame:
    """A released CSV keyed by its index column (`index` or unnamed), columns renamed to domains."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found")
    frame = pd.read_csv(path)
    key = frame.columns[0]
    if key != "index" and not key.startswith("Unnamed"):
        raise UserError(f"{path}: first column {key!r} is not an index column (`index` or unnamed)")
    frame = frame.set_index(key)
    names = {}
    for column in frame.columns:
        match = pattern.match(column)
        if not match:
            raise UserError(f"{path}: column {column!r} does not match {pattern.pattern}")
        names[column] = match.group(1).lower()
    return frame.rename(columns=names).astype(float)


def read_released(mixtures: str | Path, losses: str | Path) -> ProxyTable:
    """Join a released mixture CSV and loss CSV on the values of their index column."""
    mix = _read_indexed(mixtures, _MIXTURE_COLUMN)
    loss = _read_indexed(losses, _LOSS_COLUMN)
    source = f"{mixtures} + {losses}"
    _check_loss_domains(list(loss.columns), list(mix.columns), source)
    keys = mix.index.intersection(loss.index)
    if len(keys) == 0:
        raise UserError(f"{source}: no index value appears in both files")
    if len(keys) < max(len(mix), len(loss)):
        print(f"note: {source}: {len(mix) - len(keys)} mixture and {len(loss) - len(keys)} loss rows "
              "have no partner and are left out")
    mix, loss = mix.loc[keys], loss.loc[keys]
    return ProxyTable([str(k) for k in keys], list(mix.columns), mix.to_numpy(float),
                      loss.reset_index(drop=True), source)


def target_name(target: Target) -> str:
    if isinstance(target, dict):
        return "+".join(f"{w:g}*{d}" for d, w in target.items())
    return str(target)


def target_values(table: ProxyTable, target: Target) -> np.ndarray:
    """The regression target: one domain's loss, `mean` over domains, or a weighted mean."""
    if isinstance(target, dict):
        weights = {str(d): float(w) for d, w in target.items()}
        if not weights or sum(weights.values()) <= 0:
            raise UserError(f"target {target!r}: weights must be positive and not all zero")
    elif target == "mean":
        weights = {d: 1.0 for d in table.losses.columns}
    else:
        weights = {str(target): 1.0}
    unknown = sorted(set(weights) - set(table.losses.columns))
    if unknown:
        raise UserError(f"target {target_name(target)!r} names no domain with losses in {table.source}: "
                        f"{unknown}; domains with losses: {sorted(table.losses.columns)}")
    used = table.losses[list(weights)]
    bad = used.isna().sum()
    if bad.any():
        which = ", ".join(f"{d} ({n} rows)" for d, n in bad.items() if n)
        raise UserError(f"{table.source}: NaN losses for target domain(s) {which}")
    return used.to_numpy() @ np.array(list(weights.values())) / sum(weights.values())


# ----------------------------------------------------------------------- regressors
class LightGBM:
    """Gradient-boosted trees (RegMix). Early stopping on a seeded split of the training rows.

    `refit`: after early stopping, retrain on all rows for the best number of rounds
    (uses every proxy; without it the model is the one trained on the non-held-out part).

    `compile` turns the trees into native code with lleaves: the same predictions (to fp64
    rounding), 5-15x faster, which lets `search` score 1M mixtures through 1000 trees in seconds.
    """

    compiled = None  # the lleaves model `predict` uses when set; lives in LLVM memory, never pickled
    compiled_for = None  # the host CPU (name and features) the machine code in COMPILED targets

    def __init__(self, n_estimators: int = 1000, learning_rate: float = 0.01,
                 early_stopping_rounds: int = 50, early_stopping_fraction: float = 0.2,
                 refit: bool = False, **lgb_params: Any):
        self.n_estimators, self.learning_rate = int(n_estimators), float(learning_rate)
        self.rounds, self.fraction, self.refit = int(early_stopping_rounds), float(early_stopping_fraction), refit
        self.lgb_params = lgb_params
        self.booster = None
        self.best_iteration = 0
        self.early_stopped = False
        self.threads = PREDICT_THREADS

    def _params(self, n: int, seed: int) -> dict[str, Any]:
        # LightGBM's default of 20 rows per leaf forbids any split on a handful of proxies.
        min_child = max(1, min(20, n // 8))
        params = dict(objective="regression", learning_rate=self.learning_rate, seed=seed,
                      deterministic=True, force_row_wise=True, num_threads=PREDICT_THREADS,
                      verbosity=-1, min_child_samples=min_child, min_data_in_bin=min(3, min_child))
        return {**params, **self.lgb_params}

    def fit(self, W: np.ndarray, y: np.ndarray, seed: int) -> "LightGBM":
        import lightgbm as lgb

        n = len(y)
        n_valid = int(round(n * self.fraction))
        if self.rounds > 0 and n_valid >= 5 and n - n_valid >= 5:
            order = np.random.default_rng(seed).permutation(n)
            valid, train = order[:n_valid], order[n_valid:]
            params = self._params(len(train), seed)
            data = lgb.Dataset(W[train], y[train], params=params)
            booster = lgb.train(params, data, self.n_estimators,
                                valid_sets=[lgb.Dataset(W[valid], y[valid], reference=data)],
                                callbacks=[lgb.early_stopping(self.rounds, verbose=False)])
            self.best_iteration = booster.best_iteration or self.n_estimators
            self.early_stopped = True
            if not self.refit:
                # Keep only the trees up to the best round: smaller and faster to predict.
                self.booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=self.best_iteration))
                return self
        else:  # too few proxies to hold any out: boost the full budget
            self.best_iteration, self.early_stopped = self.n_estimators, False
        params = self._params(n, seed)
        self.booster = lgb.train(params, lgb.Dataset(W, y, params=params), self.best_iteration)
        return self

    def predict(self, W: np.ndarray) -> np.ndarray:
        if self.compiled is not None:
            return self.compiled.predict(W, n_jobs=self.threads)
        return self.booster.predict(W, num_threads=self.threads)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "compiled"}

    def compile(self, folder: Path) -> None:
        """Write folder/model.txt, compile it to folder/model.o and predict through it from now on.

        Without lleaves only model.txt is written and predictions stay with LightGBM.
        """
        from regmix.files import atomic_path, write_text

        write_text(folder / BOOSTER_TEXT, self.booster.model_to_string())
        lleaves = _lleaves()
        if lleaves is None:
            return
        print(f"compiling {self.booster.num_trees()} trees with lleaves -> {folder / COMPILED} "
              "(once per fit; 15-35 s per 1000 trees on 2 cores)")
        model = lleaves.Model(model_file=str(folder / BOOSTER_TEXT))
        with atomic_path(folder / COMPILED) as tmp:
            tmp.unlink()  # lleaves writes its cache file only if none exists yet
            model.compile(cache=str(tmp))
        self.compiled, self.compiled_for = model, _host_cpu()

    def load_compiled(self, folder: Path) -> None:
        """Predict through folder/model.o when it is there, was built for this CPU and lleaves imports."""
        if self.compiled_for is None or not all((folder / f).exists() for f in (BOOSTER_TEXT, COMPILED)):
            return
        lleaves = _lleaves()
        if lleaves is None:
            return
        if self.compiled_for != _host_cpu():
            print(f"note: {folder / COMPILED} was compiled for another CPU ({self.compiled_for.split()[0]}); "
                  "predicting with LightGBM (re-run the fit stage here to compile it for this one)")
            return
        model = lleaves.Model(model_file=str(folder / BOOSTER_TEXT))
        n = self.booster.num_feature()
        if model.num_feature() == n:
            model.compile(cache=str(folder / COMPILED))  # loads the machine code; compiles nothing
            # lleaves trusts its cache blindly: check it is these trees on a few fixed mixtures.
            probe = np.random.default_rng(0).dirichlet(np.ones(n), 256)
            if np.allclose(model.predict(probe, n_jobs=1), self.booster.predict(probe), rtol=0, atol=1e-9):
                self.compiled = model
                return
        raise UserError(f"{folder / COMPILED} does not hold the trees of {folder / 'model.pkl'}: re-run the fit stage")

    def info(self) -> dict[str, Any]:
        return {"best_iteration": self.best_iteration, "early_stopped": self.early_stopped,
                "refit": self.refit, "trees": self.booster.num_trees(),
                "params": {k: v for k, v in self._params(0, 0).items()
                           if k not in ("seed", "verbosity", "min_child_samples", "min_data_in_bin")}}

    def effects(self) -> np.ndarray:
        """Total split gain per domain (LightGBM's feature importance)."""
        return self.booster.feature_importance(importance_type="gain")


class Linear:
    """Ordinary least squares (alpha = 0) or ridge regression on the weights."""

    def __init__(self, alpha: float = 0.0):
        self.alpha = float(alpha)

    def _model(self):
        from sklearn.linear_model import LinearRegression, Ridge

        return Ridge(alpha=self.alpha) if self.alpha > 0 else LinearRegression()

    def _fit_y(self, y: np.ndarray) -> np.ndarray:
        return y

    def fit(self, W: np.ndarray, y: np.ndarray, seed: int) -> "Linear":
        self.model = self._model().fit(W, self._fit_y(y))
        return self

    def predict(self, W: np.ndarray) -> np.ndarray:
        return self.model.predict(W)

    def info(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "intercept": float(self.model.intercept_),
                "coefficients": [float(c) for c in self.model.coef_]}

    def effects(self) -> np.ndarray:
        """The coefficients: the change of the (log) target per unit of domain weight."""
        return np.asarray(self.model.coef_)


class LogLinear(Linear):
    """loss = exp(b + w.x), fitted by least squares on log(loss)."""

    def _fit_y(self, y: np.ndarray) -> np.ndarray:
        if (y <= 0).any():
            raise UserError("regression.model=loglinear needs positive target losses")
        return np.log(y)

    def predict(self, W: np.ndarray) -> np.ndarray:
        return np.exp(super().predict(W))


class GaussianProcess:
    """GP with an anisotropic RBF kernel plus white noise; `predict_std` gives its spread."""

    chunk = 50_000  # rows per prediction block: the kernel matrix is chunk x n_train

    def __init__(self, length_scale: float = 0.3, noise: float = 0.01, restarts: int = 0):
        self.length_scale, self.noise, self.restarts = float(length_scale), float(noise), int(restarts)

    def fit(self, W: np.ndarray, y: np.ndarray, seed: int) -> "GaussianProcess":
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        kernel = ConstantKernel() * RBF(np.full(W.shape[1], self.length_scale), (1e-3, 1e3)) \
            + WhiteKernel(self.noise, (1e-8, 1.0))
        gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed,
                                      n_restarts_optimizer=self.restarts)
        with warnings.catch_warnings():
            # A domain that barely matters drives its length scale to the bound: expected, not a failure.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model = gp.fit(W, y)
        return self

    def predict(self, W: np.ndarray) -> np.ndarray:
        return np.concatenate([self.model.predict(W[i:i + self.chunk]) for i in range(0, len(W), self.chunk)])

    def predict_std(self, W: np.ndarray) -> np.ndarray:
        return np.concatenate([self.model.predict(W[i:i + self.chunk], return_std=True)[1]
                               for i in range(0, len(W), self.chunk)])

    def info(self) -> dict[str, Any]:
        return {"kernel": str(self.model.kernel_)}

    def effects(self) -> np.ndarray:
        """Inverse fitted length scales: how quickly the loss changes with each domain."""
        rbf = self.model.kernel_.k1.k2
        return 1.0 / np.asarray(rbf.length_scale)


class Ensemble:
    """The mean prediction of several regressors, e.g. {lightgbm: {...}, loglinear: {}}."""

    def __init__(self, **members: dict[str, Any]):
        if not members:
            raise UserError("regression.params of model=ensemble must name member regressors")
        self.members = {name: make_model(name, p or {}) for name, p in members.items()}

    def fit(self, W: np.ndarray, y: np.ndarray, seed: int) -> "Ensemble":
        for m in self.members.values():
            m.fit(W, y, seed)
        return self

    def predict(self, W: np.ndarray) -> np.ndarray:
        return np.mean([m.predict(W) for m in self.members.values()], axis=0)

    def info(self) -> dict[str, Any]:
        return {name: m.info() for name, m in self.members.items()}

    def effects(self) -> None:
        return None  # members' effects have different units


@functools.cache
def _lleaves():
    """The lleaves module, or None (noted once) where it or its LLVM cannot be imported."""
    try:
        import lleaves
    except (ImportError, OSError) as e:
        print(f"note: lleaves unavailable ({e}); LightGBM predicts itself, 5-15x slower "
              "(pip install 'lleaves>=1.2' 'llvmlite>=0.43,<0.44')")
        return None
    return lleaves


def _host_cpu() -> str:
    import llvmlite.binding as llvm

    return f"{llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}"


MODELS = {"lightgbm": LightGBM, "linear": Linear, "loglinear": LogLinear, "gp": GaussianProcess,
          "ensemble": Ensemble}


def make_model(name: str, params: dict[str, Any]):
    """An unfitted regressor of kind `name` with hyperparameters `params`."""
    if name not in MODELS:
        raise UserError(f"regression.model {name!r} unknown; one of {sorted(MODELS)}")
    try:
        return MODELS[name](**params)
    except TypeError as e:
        raise UserError(f"regression.params for model={name}: {e}") from None


# ------------------------------------------------------------------------ regressor
@dataclass
class Regressor:
    """A fitted regressor: the model `search` predicts through, plus its bootstrap refits."""

    domains: list[str]  # column order of W
    target: str  # what it predicts (lower is better)
    model: str  # regressor kind
    base: Any  # the regressor fitted on all training proxies
    members: list = field(default_factory=list)  # bootstrap refits, each with .predict(W)

    def _check(self, W: np.ndarray) -> np.ndarray:
        W = np.asarray(W, dtype=float)
        if W.ndim != 2 or W.shape[1] != len(self.domains):
            raise UserError(f"expected mixtures of shape [n, {len(self.domains)}] ({', '.join(self.domains)}), "
                            f"got {W.shape}")
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


def fit_regressor(W: np.ndarray, y: np.ndarray, domains: list[str], target: Target,
                  cfg: RegressionConfig, seed: int) -> Regressor:
    """Fit on all rows, then `cfg.n_bootstrap` refits on seeded resamples of the same rows."""
    base = make_model(cfg.model, cfg.params).fit(W, y, seed)
    rng = np.random.default_rng(seed)
    members = []
    for i in tqdm(range(cfg.n_bootstrap), desc="bootstrap", disable=cfg.n_bootstrap == 0):
        rows = rng.integers(0, len(y), len(y))
        members.append(make_model(cfg.model, cfg.params).fit(W[rows], y[rows], seed + 1 + i))
    return Regressor(list(domains), target_name(target), cfg.model, base, members)


def cross_validate(W: np.ndarray, y: np.ndarray, cfg: RegressionConfig, seed: int) -> np.ndarray:
    """Out-of-fold predictions of a seeded k-fold split; each fold fits on the others alone."""
    if cfg.cv_folds < 2:
        raise UserError(f"regression.cv_folds must be at least 2, got {cfg.cv_folds}")
    if len(y) < cfg.cv_folds:
        raise UserError(f"{len(y)} proxies are fewer than regression.cv_folds={cfg.cv_folds}")
    predicted = np.empty_like(y, dtype=float)
    folds = KFold(cfg.cv_folds, shuffle=True, random_state=seed).split(W)
    for k, (train, held) in enumerate(tqdm(list(folds), desc="cv folds")):
        predicted[held] = make_model(cfg.model, cfg.params).fit(W[train], y[train], seed + k).predict(W[held])
    return predicted


def scores(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Rank and linear correlation, mean squared error and size of one evaluated set."""
    constant = np.ptp(true) == 0 or np.ptp(predicted) == 0
    nan = float("nan")
    return {"spearman": nan if constant else float(spearmanr(true, predicted)[0]),
            "pearson": nan if constant else float(pearsonr(true, predicted)[0]),
            "mse": float(np.mean((true - predicted) ** 2)), "n": int(len(true))}


def predict_seconds(regressor: Regressor, n_rows: int = 200_000, seed: int = 0) -> float:
    """Seconds to predict 1M uniformly drawn mixtures, extrapolated from `n_rows`."""
    W = np.random.default_rng(seed).dirichlet(np.ones(len(regressor.domains)), n_rows)
    start = time.perf_counter()
    regressor.predict(W)
    return (time.perf_counter() - start) * 1_000_000 / n_rows


@dataclass
class FitReport:
    regressor: Regressor
    metrics: dict[str, Any]
    predictions: pd.DataFrame  # set, id, true, predicted


def fit_and_report(train: ProxyTable, evals: dict[str, ProxyTable], cfg: RegressionConfig,
                   target: Target, seed: int) -> FitReport:
    """Cross-validate on `train`, fit on all of it, then score each eval set (never seen before)."""
    y = target_values(train, target)
    W = train.weights
    # Read every eval set before fitting, so a bad file fails fast.
    eval_data = {name: (t.aligned(train.domains), target_values(t, target), t.ids) for name, t in evals.items()}
    oof = cross_validate(W, y, cfg, seed)
    regressor = fit_regressor(W, y, train.domains, target, cfg, seed)
    metrics: dict[str, Any] = {"model": cfg.model, "target": regressor.target, "n_train": len(y),
                               "cv": {**scores(y, oof), "folds": cfg.cv_folds}}
    rows = [pd.DataFrame({"set": "cv", "id": train.ids, "true": y, "predicted": oof})]
    for name, (W_eval, y_eval, ids) in eval_data.items():
        predicted = regressor.predict(W_eval)
        metrics[name] = scores(y_eval, predicted)
        rows.append(pd.DataFrame({"set": name, "id": ids, "true": y_eval, "predicted": predicted}))
    metrics["fitted"] = regressor.base.info()
    metrics["n_bootstrap"] = len(regressor.members)
    return FitReport(regressor, metrics, pd.concat(rows, ignore_index=True))


# ------------------------------------------------------------------------ save/load
def save_regressor(regressor: Regressor, folder: str | Path) -> None:
    """folder/model.pkl (the Regressor) and folder/model.json (what it expects and predicts).

    A LightGBM model also gets folder/model.txt and its compiled form folder/model.o, which
    `regressor` predicts through from then on (its bootstrap members stay with LightGBM: the
    search runs them on a small prefix of the pool only).
    """
    from regmix.files import atomic_path, write_json

    folder = Path(folder)
    for stale in (BOOSTER_TEXT, COMPILED):  # from an earlier fit, perhaps of another model kind
        (folder / stale).unlink(missing_ok=True)
    if isinstance(regressor.base, LightGBM):
        regressor.base.compile(folder)
    with atomic_path(folder / "model.pkl") as tmp:
        tmp.write_bytes(pickle.dumps(regressor, protocol=pickle.HIGHEST_PROTOCOL))
    write_json(folder / "model.json", {"model": regressor.model, "target": regressor.target,
                                       "domains": regressor.domains, "n_members": len(regressor.members)})


def load_regressor(path: str | Path) -> Regressor:
    """Load what `save_regressor` wrote; `path` is the folder or its model.pkl."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pkl"
    if not path.exists():
        raise UserError(f"{path} not found: run the fit stage first")
    regressor = pickle.loads(path.read_bytes())
    if not isinstance(regressor, Regressor):
        raise UserError(f"{path} does not hold a fitted regressor")
    if isinstance(regressor.base, LightGBM):
        regressor.base.load_compiled(path.parent)
    return regressor


# ---------------------------------------------------------------------------- plots
def domain_curves(regressor: Regressor, reference: np.ndarray, top: np.ndarray,
                  points: int = 25) -> np.ndarray:
    """Predicted target as each domain's weight goes 0 -> top[d], the others scaled to fill.

    A partial-dependence picture that stays on the simplex: from the `reference` mixture,
    domain d is set to t and the remaining weights shrink in proportion. Returns
    [len(domains), points] predictions.
    """
    grid = np.linspace(0.0, 1.0, points)
    curves = []
    for d in range(len(reference)):
        rest = reference.copy()
        rest[d] = 0.0
        rest = rest / rest.sum() if rest.sum() > 0 else np.full_like(rest, 1 / max(len(rest) - 1, 1))
        t = grid * top[d]
        W = (1 - t)[:, None] * rest[None, :]
        W[:, d] = t
        curves.append(regressor.predict(W))
    return np.array(curves)


def plot_fit(report: FitReport, train_weights: np.ndarray, folder: str | Path) -> list[Path]:
    """predicted_vs_true.png (one panel per set) and effects.png (per-domain effects)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sets = list(dict.fromkeys(report.predictions["set"]))
    fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 4.2), squeeze=False)
    for ax, name in zip(axes[0], sets):
        rows = report.predictions[report.predictions["set"] == name]
        ax.scatter(rows["true"], rows["predicted"], s=10, alpha=0.6)
        lo, hi = np.nanmin(rows[["true", "predicted"]].to_numpy()), np.nanmax(rows[["true", "predicted"]].to_numpy())
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
        m = report.metrics[name]
        ax.set(title=f"{name}: spearman {m['spearman']:.4f}, n={m['n']}",
               xlabel=f"true {report.regressor.target} loss", ylabel="predicted")
    fig.tight_layout()
    paths = [folder / "predicted_vs_true.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    reg = report.regressor
    effects = reg.base.effects()
    curves = domain_curves(reg, train_weights.mean(axis=0), train_weights.max(axis=0))
    fig, axes = plt.subplots(1, 2 if effects is not None else 1, figsize=(13, 5), squeeze=False)
    grid = np.linspace(0, 1, curves.shape[1])
    order = np.argsort(curves[:, -1] - curves[:, 0])
    cmap = plt.get_cmap("tab20")
    for i, d in enumerate(order):
        axes[0][0].plot(grid * train_weights[:, d].max(), curves[d], label=reg.domains[d], color=cmap(i % 20))
    axes[0][0].set(title="predicted loss vs one domain's weight (others rescaled)",
                   xlabel="domain weight", ylabel=f"predicted {reg.target} loss")
    axes[0][0].legend(fontsize=7, ncol=2)
    if effects is not None:
        kind = {"lightgbm": "split gain", "gp": "1 / length scale"}.get(reg.model, "coefficient")
        idx = np.argsort(effects)
        axes[0][1].barh([reg.domains[i] for i in idx], np.asarray(effects)[idx])
        axes[0][1].set(title=f"per-domain {kind}", xlabel=kind)
    fig.tight_layout()
    paths.append(folder / "effects.png")
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def describe(metrics: dict[str, Any]) -> str:
    """One line per scored set, for the console."""
    lines = [f"{metrics['model']} on {metrics['n_train']} proxies, target {metrics['target']}"]
    for name, m in metrics.items():
        if isinstance(m, dict) and "spearman" in m:
            lines.append(f"  {name:<12} spearman {m['spearman']:.4f}  pearson {m['pearson']:.4f}  "
                         f"mse {m['mse']:.3g}  n={m['n']}")
    lines.append(f"  predict: {metrics['predict_seconds_per_1m']:.2f} s per 1M mixtures")
    return "\n".join(lines)


def released_pair(spec: Any, key: str) -> ProxyTable:
    """A `{mixtures, losses}` entry of regression.train_set / eval_sets, read and joined."""
    if not isinstance(spec, dict) or set(spec) != {"mixtures", "losses"}:
        raise UserError(f"{key} must be a mapping with exactly the keys `mixtures` and `losses`, got {spec!r}")
    return read_released(spec["mixtures"], spec["losses"])

