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

from regmix.errors import UserError
from regmix.regression.lightgbm import LightGBM

ReadText = Callable[[str], str]  # a stored file's text, by name (checked against its recorded hash)


class Linear:
    """Ordinary least squares (alpha = 0) or ridge regression on the weights."""

    kind = "linear"

    def __init__(self, alpha: float = 0.0):
        self.alpha = float(alpha)
        self.coef, self.intercept = np.zeros(0), 0.0

    def _fit_y(self, y: np.ndarray) -> np.ndarray:
        return y

    def fit(self, W: np.ndarray, y: np.ndarray, seed: int) -> Linear:
        from sklearn.linear_model import LinearRegression, Ridge

        fitted = (Ridge(alpha=self.alpha) if self.alpha > 0 else LinearRegression()).fit(W, self._fit_y(y))
        self.coef, self.intercept = np.asarray(fitted.coef_, dtype=float), float(fitted.intercept_)
        return self

    def predict(self, W: np.ndarray) -> np.ndarray:
        return W @ self.coef + self.intercept  # what scikit-learn's predict computes

    def info(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "intercept": self.intercept, "coefficients": self.coef.tolist()}

    def effects(self) -> np.ndarray:
        """The coefficients: the change of the (log) target per unit of domain weight."""
        return self.coef

    def state(self, name: str, texts: dict[str, str]) -> dict[str, Any]:
        return {"kind": self.kind, "params": {"alpha": self.alpha},
                "coefficients": self.coef.tolist(), "intercept": self.intercept}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], read_text: ReadText) -> Linear:
        model = cls(**state["params"])
        model.coef, model.intercept = np.array(state["coefficients"], dtype=float), float(state["intercept"])
        return model


class LogLinear(Linear):
    """loss = exp(b + w.x), fitted by least squares on log(loss)."""

    kind = "loglinear"

    def _fit_y(self, y: np.ndarray) -> np.ndarray:
        if (y <= 0).any():
            raise UserError("regression.model=loglinear needs positive target losses")
        return np.log(y)

    def predict(self, W: np.ndarray) -> np.ndarray:
        return np.exp(super().predict(W))


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

        gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed, n_restarts_optimizer=self.restarts,
                                      optimizer="fmin_l_bfgs_b" if optimize else None)
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
        return np.concatenate([self.model.predict(W[i:i + self.chunk]) for i in range(0, len(W), self.chunk)])

    def predict_std(self, W: np.ndarray) -> np.ndarray:
        return np.concatenate([self.model.predict(W[i:i + self.chunk], return_std=True)[1]
                               for i in range(0, len(W), self.chunk)])

    def info(self) -> dict[str, Any]:
        return {"kernel": str(self.model.kernel_)}

    def effects(self) -> np.ndarray:
        """Inverse fitted length scales: how quickly the loss changes with each domain."""
        return 1.0 / np.asarray(self.model.kernel_.k1.k2.length_scale)

    def state(self, name: str, texts: dict[str, str]) -> dict[str, Any]:
        kernel = self.model.kernel_
        fitted = {"constant": float(kernel.k1.k1.constant_value), "noise": float(kernel.k2.noise_level),
                  "length_scale": np.asarray(kernel.k1.k2.length_scale, dtype=float).tolist()}
        texts[f"{name}.rows.json"] = json.dumps({"W": self.W.tolist(), "y": self.y.tolist()})
        return {"kind": self.kind, "params": {"length_scale": self.length_scale, "noise": self.noise,
                                              "restarts": self.restarts},
                "kernel": fitted, "rows": f"{name}.rows.json"}

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
    if kind not in MODELS:
        raise ValueError(f"unknown regressor kind {kind!r}; one of {sorted(MODELS)}")
    return MODELS[kind].from_state(state, read_text)
