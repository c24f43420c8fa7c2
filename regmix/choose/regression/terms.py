"""A target of several terms fitted term by term (`regression.per_term`): the combined regressor.

`mean`, a weighted mean or `zmean` reads several scores; each is fitted on its own (see
regmix.choose.regression.fitted.fit_terms) and `TermSum` combines their predictions as
regmix.target combines measured terms.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from regmix.choose.regression.lightgbm import LightGBM
from regmix.choose.regression.models import ReadText, restore_model
from regmix.config import RegressionConfig
from regmix.errors import UserError
from regmix.target import Target


class TermSum:
    """A target of several terms rebuilt from one fitted regressor per term (`regression.per_term`):
    sum_j w_j (f_j(W) - centre_j) / spread_j, the weights summing to one, as regmix.target combines
    measured terms (centre 0 and spread 1 unless the target standardises them, as `zmean` does).

    Each term is one score a mixture moves in its own way (a domain's loss falls mostly with its own
    weight); an aggregate of ten such terms is harder to fit as one number than each term is alone.
    """

    kind = "terms"

    def __init__(self, terms: Mapping[str, Any], weights: Any, centre: Any, spread: Any):
        self.terms = dict(terms)  # score column -> its fitted regressor
        self.weights, self.centre, self.spread = (np.asarray(v, dtype=float) for v in (weights, centre, spread))

    def combine(self, X: np.ndarray) -> np.ndarray:
        """The target of rows of term values (columns in `terms` order)."""
        # term by term, not a matrix product: a row's prediction must not depend on the rows beside it
        combined = np.zeros(len(X))
        for j, weight in enumerate(self.weights):
            combined += weight * ((X[:, j] - self.centre[j]) / self.spread[j])
        return combined

    def predict(self, W: np.ndarray) -> np.ndarray:
        return self.combine(np.column_stack([m.predict(W) for m in self.terms.values()]))

    def compile(self) -> None:
        for m in self.terms.values():
            if isinstance(m, LightGBM):
                m.compile()

    def info(self) -> dict[str, Any]:
        return {name: m.info() for name, m in self.terms.items()}

    def effects(self) -> None:
        return None  # terms' effects have different units

    def state(self, name: str, texts: dict[str, str]) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "terms": {k: m.state(f"{name}.{k}", texts) for k, m in self.terms.items()},
            "weights": self.weights.tolist(),
            "centre": self.centre.tolist(),
            "spread": self.spread.tolist(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], read_text: ReadText) -> TermSum:
        terms = {k: restore_model(s, read_text) for k, s in state["terms"].items()}
        return cls(terms, state["weights"], state["centre"], state["spread"])


def fitted_terms(target: Target, scores: pd.DataFrame, source: str, cfg: RegressionConfig) -> dict[str, float] | None:
    """{score column: weight} of a target fitted term by term: `regression.per_term` and two or more
    terms (`mean`, a weighted mean, `zmean`); None: fitted as one number."""
    columns = target.columns(list(scores.columns), source)
    return columns if cfg.per_term and len(columns) > 1 else None


def term_sum(target: Target, models: dict[str, Any]) -> TermSum:
    """The fitted terms combined as `target` combines measured ones (regmix.target.Target.values)."""
    columns = target.columns(list(models), "the fitted terms")
    weights = np.array([columns[c] for c in models], dtype=float)
    if target.standardise:
        if target.scales is None:
            raise UserError(f"target {target.name!r} is standardised over the swarm: calibrate it first")
        centre, spread = np.array(target.scales, dtype=float).T
    else:
        centre, spread = np.zeros(len(models)), np.ones(len(models))
    return TermSum(models, weights / weights.sum(), centre, spread)
