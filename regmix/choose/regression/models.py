"""The regressors behind one small interface, and the registry that makes them by name.

Each has `fit(W, y, seed)`, `predict(W)`, `info()` (fitted hyperparameters for metrics),
`effects()` (one number per domain, for the plot) and, for storage in plain formats,
`state(name, texts)` (a JSON-able dict; large text in `texts`) and `from_state(state, read_text)`.
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Callable, Mapping, Union

import numpy as np

from regmix.choose.regression.lightgbm import LightGBM
from regmix.errors import UserError

ReadText = Callable[[str], str]  # a stored file's text, by name (checked against its recorded hash)


def row_sums(W: np.ndarray) -> np.ndarray:
    """What each mixture's weights add up to (RegMix's released rows: 0.996 to 1.003); all positive."""
    sums = W.sum(axis=1)
    if not (sums > 0).all():
        raise UserError(f"{int((~(sums > 0)).sum())} mixture(s) without positive total weight: no loss to predict")
    return sums


def on_simplex(W: np.ndarray) -> np.ndarray:
    """Each row divided by its sum: the mixture it writes, without the rounding."""
    return W / row_sums(W)[:, None]


def simplex_ridge(R: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """b minimising |y - R b|^2 + alpha |b - mean(b)|^2, for rows R that sum to one.

    Solved as least squares on the centred rows and target: the centred coefficients are the
    minimum-norm solution (so they sum to zero, and alpha shrinks them towards zero), and their
    mean, the intercept, is left unpenalised. With alpha = 0 this is the no-intercept OLS fit
    (unique where the rows span the simplex; where they do not, e.g. fewer rows than domains,
    the contrasts the rows cannot tell apart are left at the mean); with alpha > 0 every coefficient shrinks towards
    the mean coefficient, never towards a loss of zero. The same b as scikit-learn's
    Ridge(alpha).fit(R, y), intercept added to each coefficient.
    """
    centre, mean_y = R.mean(axis=0), y.mean()
    A, target = R - centre, y - mean_y
    if alpha > 0:  # ridge as least squares on rows augmented with sqrt(alpha) I
        A, target = np.vstack([A, np.sqrt(alpha) * np.eye(R.shape[1])]), np.concatenate([target, np.zeros(R.shape[1])])
    effects = np.linalg.lstsq(A, target, rcond=None)[0]
    effects -= effects.mean()  # zero already, up to rounding
    return effects + (mean_y - centre @ effects)


class Linear:
    """loss = sum_d b_d r_d on the simplex (r = the row over its sum): OLS (alpha = 0) or ridge.

    Why no intercept: mixture weights sum to one, so an intercept plus one coefficient per domain
    is unidentifiable (add s to the intercept and take s from every coefficient: same
    predictions). On rows that sum to one only up to rounding, ordinary OLS with an intercept
    fits the rounding instead (RegMix's 1M rows: intercept 11.3, coefficients -9 to -5). Rows are
    renormalised to sum to one exactly, here and in `predict`, and fitted without an intercept:
    b_d is then the predicted loss of the pure domain d, on the target's scale (2.3 to 6.2 on
    RegMix's rows), and scaling a row changes nothing. This was chosen over centred contrasts
    (intercept + coefficients summing to zero) because it gives the same predictions with
    coefficients that read as losses. `effects()` centres them (b_d - mean b): the change of the
    predicted loss when weight moves from an average domain to d.

    Ridge (alpha > 0) shrinks the coefficients towards their mean (the intercept of the centred
    fit is not penalised), not towards zero, which on the loss scale would pull every pure-domain
    loss towards 0; a huge alpha predicts the mean training loss everywhere.
    """

    kind = "linear"

    def __init__(self, alpha: float = 0.0):
        if not alpha >= 0:
            raise UserError(f"regression.params.alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.coef = np.zeros(0)

    def fit(self, W: np.ndarray, y: np.ndarray, seed: int) -> Linear:
        self.coef = simplex_ridge(on_simplex(W), y, self.alpha)
        return self

    def predict(self, W: np.ndarray) -> np.ndarray:
        return (W @ self.coef) / row_sums(W)  # = on_simplex(W) @ coef, without a copy of W

    def info(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "pure_domain_losses": self.coef.tolist()}

    def effects(self) -> np.ndarray:
        """The coefficients minus their mean: effect on the predicted loss, centred."""
        return self.coef - self.coef.mean()

    def state(self, name: str, texts: dict[str, str]) -> dict[str, Any]:
        return {"kind": self.kind, "params": {"alpha": self.alpha}, "pure_domain_losses": self.coef.tolist()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], read_text: ReadText) -> Linear:
        # An older linear state (intercept + coefficients on unnormalised rows) has no such key: refused.
        model = cls(**state["params"])
        model.coef = np.array(state["pure_domain_losses"], dtype=float)
        return model


class LogLinear:
    """loss = c + k exp(t . r), the Data Mixing Laws form (Ye et al. 2024), r the row over its sum.

    c is the loss no mixture removes (0 <= c < the smallest training loss), k > 0 the excess loss
    over c at the uniform mixture, t one exponent per domain. On the simplex k and t are
    identifiable only together (k e^s and t - s predict the same), so t is centred (sums to zero)
    and `effects()` is t: the change of log(loss - c) as weight moves from an average domain to d.

    Fitted by nonlinear least squares on the loss (scipy's bounded trust-region least_squares)
    over c and a = log k + t, which is identifiable, from a deterministic start: c = 0 and a the
    log-linear fit of log(loss) (`simplex_ridge`). alpha > 0 adds alpha |t|^2 (log scale) to the
    squared loss residuals, there and in the start. On RegMix's 1M rows c ends at its upper
    bound, just under the smallest loss: `info()` says so (`offset_at_bound`).
    """

    kind = "loglinear"
    margin = 1e-6  # c stays this fraction below the smallest training loss
    tolerance = 1e-10  # least_squares' ftol, xtol and gtol
    max_evaluations = 2000  # least_squares' max_nfev (RegMix's 1M rows: about 50)

    def __init__(self, alpha: float = 0.0):
        if not alpha >= 0:
            raise UserError(f"regression.params.alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.c, self.k, self.t, self.bound = 0.0, 1.0, np.zeros(0), 0.0

    def fit(self, W: np.ndarray, y: np.ndarray, seed: int) -> LogLinear:
        from scipy.optimize import least_squares

        if (y <= 0).any():
            raise UserError("regression.model=loglinear needs positive target losses")
        R, D = on_simplex(W), W.shape[1]
        centring = np.sqrt(self.alpha) * (np.eye(D) - 1.0 / D)  # sqrt(alpha) (a - mean a) = sqrt(alpha) t

        def residuals(x: np.ndarray) -> np.ndarray:
            fit = x[0] + np.exp(R @ x[1:]) - y
            return np.concatenate([fit, centring @ x[1:]]) if self.alpha > 0 else fit

        def jacobian(x: np.ndarray) -> np.ndarray:
            J = np.hstack([np.ones((len(y), 1)), np.exp(R @ x[1:])[:, None] * R])
            return np.vstack([J, np.hstack([np.zeros((D, 1)), centring])]) if self.alpha > 0 else J

        self.bound = float(y.min() * (1 - self.margin))
        start = np.concatenate([[0.0], simplex_ridge(R, np.log(y), self.alpha)])
        lower, upper = np.r_[0.0, np.full(D, -np.inf)], np.r_[self.bound, np.full(D, np.inf)]
        with np.errstate(over="ignore", invalid="ignore"):
            result = least_squares(
                residuals,
                start,
                jac=jacobian,
                bounds=(lower, upper),
                method="trf",
                ftol=self.tolerance,
                xtol=self.tolerance,
                gtol=self.tolerance,
                max_nfev=self.max_evaluations,
            )
        if result.status <= 0 or not np.isfinite(result.x).all() or not np.isfinite(result.cost):
            raise UserError(
                f"regression.model=loglinear: the fit of loss = c + k exp(t . r) did not converge "
                f"({result.message}); try regression=linear, or alpha > 0"
            )
        a = result.x[1:]
        self.c, self.k, self.t = float(result.x[0]), float(np.exp(a.mean())), a - a.mean()
        return self

    def predict(self, W: np.ndarray) -> np.ndarray:
        return self.c + self.k * np.exp((W @ self.t) / row_sums(W))

    def info(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "c": self.c,
            "k": self.k,
            "t": self.t.tolist(),
            "offset_at_bound": bool(self.c >= self.bound * (1 - 1e-9)),
        }

    def effects(self) -> np.ndarray:
        """The centred exponents t: effect on log(predicted loss - c)."""
        return self.t

    def state(self, name: str, texts: dict[str, str]) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "params": {"alpha": self.alpha},
            "c": self.c,
            "k": self.k,
            "t": self.t.tolist(),
            "c_bound": self.bound,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], read_text: ReadText) -> LogLinear:
        model = cls(**state["params"])
        model.c, model.k, model.bound = float(state["c"]), float(state["k"]), float(state["c_bound"])
        model.t = np.array(state["t"], dtype=float)
        return model


class GaussianProcess:
    """GP with an anisotropic RBF kernel plus white noise; `predict_std` gives its spread.

    Stored as its fitted kernel hyperparameters and training rows: reloading refits with the
    optimizer off, which repeats the same linear algebra on the same numbers.
    """

    kind = "gp"
    chunk = 50_000  # rows per prediction block: the kernel matrix is chunk x n_train

    def __init__(self, length_scale: float = 0.3, noise: float = 0.01, restarts: int = 0):
        self.length_scale, self.noise, self.restarts = float(length_scale), float(noise), int(restarts)

    @staticmethod
    def _kernel(constant: float, length_scale: np.ndarray, noise: float):
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        return ConstantKernel(constant) * RBF(length_scale, (1e-3, 1e3)) + WhiteKernel(noise, (1e-8, 1.0))

    def _fit(self, W: np.ndarray, y: np.ndarray, kernel, seed: int, optimize: bool) -> GaussianProcess:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor

        gp = GaussianProcessRegressor(
            kernel,
            normalize_y=True,
            random_state=seed,
            n_restarts_optimizer=self.restarts,
            optimizer="fmin_l_bfgs_b" if optimize else None,
        )
        with warnings.catch_warnings():
            # A domain that barely matters drives its length scale to the bound: expected, not a failure.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model = gp.fit(W, y)
        self.W, self.y = W, y
        return self

    def fit(self, W: np.ndarray, y: np.ndarray, seed: int) -> GaussianProcess:
        kernel = self._kernel(1.0, np.full(W.shape[1], self.length_scale), self.noise)
        return self._fit(W, y, kernel, seed, optimize=True)

    def predict(self, W: np.ndarray) -> np.ndarray:
        return np.concatenate([self.model.predict(W[i : i + self.chunk]) for i in range(0, len(W), self.chunk)])

    def predict_std(self, W: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [self.model.predict(W[i : i + self.chunk], return_std=True)[1] for i in range(0, len(W), self.chunk)]
        )

    def info(self) -> dict[str, Any]:
        return {"kernel": str(self.model.kernel_)}

    def effects(self) -> np.ndarray:
        """Inverse fitted length scales: how quickly the loss changes with each domain."""
        return 1.0 / np.asarray(self.model.kernel_.k1.k2.length_scale)

    def state(self, name: str, texts: dict[str, str]) -> dict[str, Any]:
        kernel = self.model.kernel_
        fitted = {
            "constant": float(kernel.k1.k1.constant_value),
            "noise": float(kernel.k2.noise_level),
            "length_scale": np.asarray(kernel.k1.k2.length_scale, dtype=float).tolist(),
        }
        texts[f"{name}.rows.json"] = json.dumps({"W": self.W.tolist(), "y": self.y.tolist()})
        return {
            "kind": self.kind,
            "params": {"length_scale": self.length_scale, "noise": self.noise, "restarts": self.restarts},
            "kernel": fitted,
            "rows": f"{name}.rows.json",
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], read_text: ReadText) -> GaussianProcess:
        k, rows = state["kernel"], json.loads(read_text(state["rows"]))
        kernel = cls._kernel(float(k["constant"]), np.array(k["length_scale"], dtype=float), float(k["noise"]))
        W, y = np.array(rows["W"], dtype=float), np.array(rows["y"], dtype=float)
        return cls(**state["params"])._fit(W, y, kernel, seed=0, optimize=False)


class Ensemble:
    """The mean prediction of several regressors, e.g. {lightgbm: {...}, loglinear: {}}."""

    kind = "ensemble"

    def __init__(self, **members: dict[str, Any]):
        if not members:
            raise UserError("regression.params of model=ensemble must name member regressors")
        self.members = {name: make_model(name, p or {}) for name, p in members.items()}

    def fit(self, W: np.ndarray, y: np.ndarray, seed: int) -> Ensemble:
        for m in self.members.values():
            m.fit(W, y, seed)
        return self

    def predict(self, W: np.ndarray) -> np.ndarray:
        return np.mean([m.predict(W) for m in self.members.values()], axis=0)

    def info(self) -> dict[str, Any]:
        return {name: m.info() for name, m in self.members.items()}

    def effects(self) -> None:
        return None  # members' effects have different units

    def state(self, name: str, texts: dict[str, str]) -> dict[str, Any]:
        return {"kind": self.kind, "members": {k: m.state(f"{name}.{k}", texts) for k, m in self.members.items()}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], read_text: ReadText) -> Ensemble:
        model = cls(**dict.fromkeys(state["members"]))
        model.members = {k: restore_model(s, read_text) for k, s in state["members"].items()}
        return model


Model = Union[LightGBM, Linear, LogLinear, GaussianProcess, Ensemble]
MODELS: dict[str, type] = {m.kind: m for m in (LightGBM, Linear, LogLinear, GaussianProcess, Ensemble)}


def make_model(name: str, params: dict[str, Any]) -> Model:
    """An unfitted regressor of kind `name` with hyperparameters `params`."""
    if name not in MODELS:
        raise UserError(f"regression.model {name!r} unknown; one of {sorted(MODELS)}")
    try:
        return MODELS[name](**params)
    except TypeError as e:
        raise UserError(f"regression.params for model={name}: {e}") from None


def restore_model(state: Mapping[str, Any], read_text: ReadText) -> Model:
    """A fitted regressor from what its `state` wrote (ValueError / KeyError / TypeError if malformed)."""
    kind = state["kind"]
    if kind == "terms":  # a target fitted term by term, of regressors of these kinds
        from regmix.choose.regression.terms import TermSum

        return TermSum.from_state(state, read_text)
    if kind not in MODELS:
        raise ValueError(f"unknown regressor kind {kind!r}; one of {sorted(MODELS)}")
    return MODELS[kind].from_state(state, read_text)
