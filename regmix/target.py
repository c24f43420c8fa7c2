"""The regression target: the validation loss a mixture is judged by (lower is better).

params' `target` is a domain (its loss), `mean` (the mean loss over every domain) or
`{domain: weight}` (the weighted mean). The fit stage regresses it on the proxies' losses and
the evaluate stage computes it from each large model's losses: one rule, here, for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from regmix.errors import UserError

MEAN = "mean"


@dataclass(frozen=True)
class Target:
    name: str  # how metrics, plots and the stored regressor call it
    terms: Optional[tuple[tuple[str, float], ...]]  # (domain, relative weight); None: every domain alike

    @classmethod
    def parse(cls, value: Any) -> Target:
        """The target of params' `target` value."""
        if isinstance(value, Mapping):
            try:
                terms = tuple((str(d), float(w)) for d, w in value.items())
            except (TypeError, ValueError):
                raise UserError(f"target {dict(value)!r}: every weight must be a number") from None
            weights = np.array([w for _, w in terms])
            if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
                raise UserError(f"target {dict(value)!r}: weights must be finite, >= 0 and not all zero")
            return cls("+".join(f"{w:g}*{d}" for d, w in terms), terms)
        if value == MEAN:
            return cls(MEAN, None)
        if isinstance(value, str) and value:
            return cls(value, ((value, 1.0),))
        raise UserError(f"target: expected a domain, `{MEAN}` or {{domain: weight}}, got {value!r}")

    def weights(self, domains: Sequence[str], source: str) -> dict[str, float]:
        """Relative weight of each target domain (the target is their weighted mean).

        `domains` are those with losses in `source`, which error messages name.
        """
        if self.terms is None:
            return {d: 1.0 for d in domains}
        unknown = sorted(d for d, _ in self.terms if d not in set(domains))
        if unknown:
            raise UserError(f"target {self.name!r} names no domain with losses in {source}: {unknown}; "
                            f"domains with losses: {sorted(domains)}")
        return dict(self.terms)

    def values(self, losses: pd.DataFrame, source: str) -> np.ndarray:
        """The target of each row of a loss table (one column per domain)."""
        weights = self.weights(list(losses.columns), source)
        used = losses[list(weights)]
        bad = used.isna().sum()
        if bad.any():
            which = ", ".join(f"{d} ({n} rows)" for d, n in bad.items() if n)
            raise UserError(f"{source}: NaN losses for target domain(s) {which}")
        return used.to_numpy(float) @ np.array(list(weights.values())) / sum(weights.values())

    def by_name(self, losses: Mapping[str, Mapping[str, float]], source: str) -> dict[str, float]:
        """The target of each named set of per-domain losses ({name: {domain: loss}})."""
        table = pd.DataFrame([dict(losses[n]) for n in losses])
        return dict(zip(losses, map(float, self.values(table, source))))

