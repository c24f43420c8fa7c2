"""The regression target: the score a mixture is judged by (lower is better).

Every model (proxy, replicate, verify proxy, large run) is scored on every scored set (each
training domain, each `data.eval_only` domain, each evaluation set) and every task, as one
flat record of prefixed scores (see regmix.train.scores): `loss.<set>` (nats per token), `bpb.<set>`
(bits per byte) and `task.<name>` (the gold answers' bits per byte). A target reads terms from
it; params' `target` is one of

- a set's name (a domain or an evaluation set): its `target_metric` (loss or bpb);
- `task:<name>`: a task's gold-answer bits per byte;
- `mean`: the mean over the training domains;
- `{name: weight, ...}`: the weighted mean of those terms;
- `{aggregate: zmean, over: [names]}`: each term centred and scaled by its spread over the
  swarm, then averaged, so a term that mixtures move a lot does not dominate the rest.

The fit stage regresses it on the proxies' scores and the evaluate stage computes it from each
large model's scores: one rule, here, for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from regmix.errors import UserError
from regmix.tables import ROUND

MEAN = "mean"
ZMEAN = "zmean"
TASK = "task:"
METRICS = ("loss", "bpb")


def term_column(term: str, metric: str) -> str:
    """The score column a target term reads: `task.<name>` for `task:<name>`, else `<metric>.<set>`."""
    return f"task.{term[len(TASK) :]}" if term.startswith(TASK) else f"{metric}.{term}"


def _named(name: str, metric: str) -> str:
    """A target's name says its metric unless it is the default (loss)."""
    return name if metric == "loss" else f"{name} [{metric}]"


@dataclass(frozen=True)
class Target:
    name: str  # how metrics, plots and the stored regressor call it
    terms: Optional[tuple[tuple[str, float], ...]]  # (term, relative weight); None: every training domain alike
    metric: str = "loss"  # loss (nats per token) | bpb (bits per byte): what a set's term reads
    domains: Optional[tuple[str, ...]] = None  # the training domains `mean` averages (None: every set in the table)
    standardise: bool = False  # zmean: each term (x - centre) / spread, from the swarm (`calibrate`)
    scales: Optional[tuple[tuple[float, float], ...]] = None  # (centre, spread) per term, set by `calibrate`

    @classmethod
    def parse(cls, value: Any, metric: str = "loss", domains: Optional[Sequence[str]] = None) -> Target:
        """The target of params' `target` value; `domains`, the training domains, give `mean` its terms."""
        if metric not in METRICS:
            raise UserError(f"target_metric: {metric!r}; choose one of {', '.join(METRICS)}")
        doms = tuple(domains) if domains is not None else None
        if isinstance(value, Mapping) and "aggregate" in value:
            return cls._aggregate(value, metric, doms)
        if isinstance(value, Mapping):
            try:
                terms = tuple((str(d), float(w)) for d, w in value.items())
            except (TypeError, ValueError):
                raise UserError(f"target {dict(value)!r}: every weight must be a number") from None
            weights = np.array([w for _, w in terms])
            if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
                raise UserError(f"target {dict(value)!r}: weights must be finite, >= 0 and not all zero")
            return cls(_named("+".join(f"{w:g}*{d}" for d, w in terms), metric), terms, metric, doms)
        if value == MEAN:
            return cls(_named(MEAN, metric), None if doms is None else tuple((d, 1.0) for d in doms), metric, doms)
        if isinstance(value, str) and value:
            return cls(_named(value, metric), ((value, 1.0),), metric, doms)
        raise UserError(
            f"target: expected a domain, an evaluation set, `task:<name>`, `{MEAN}`, {{name: weight}} "
            f"or {{aggregate: {ZMEAN}, over: [names]}}, got {value!r}"
        )

    @classmethod
    def _aggregate(cls, value: Mapping, metric: str, domains: Optional[tuple[str, ...]]) -> Target:
        extra = sorted(set(value) - {"aggregate", "over"})
        over = value.get("over")
        if value["aggregate"] != ZMEAN or extra:
            raise UserError(f"target {dict(value)!r}: the one aggregate is {{aggregate: {ZMEAN}, over: [names]}}")
        if over == MEAN and domains is not None:
            over = list(domains)
        if not isinstance(over, (list, tuple)) or len(over) < 2 or not all(isinstance(n, str) and n for n in over):
            raise UserError(f"target.over: a list of at least two set or task names, got {over!r}")
        return cls(
            _named(f"{ZMEAN}({','.join(over)})", metric),
            tuple((str(n), 1.0) for n in over),
            metric,
            domains,
            standardise=True,
        )

    @property
    def names(self) -> list[str]:
        """The sets and tasks the target reads (empty for `mean` without known domains)."""
        return [t for t, _ in self.terms or ()]

    def columns(self, frame_columns: Sequence[str], source: str) -> dict[str, float]:
        """{score column: relative weight} of the target, checked against the columns of `source`."""
        if self.terms is None:
            prefix = f"{self.metric}."
            return {c: 1.0 for c in frame_columns if c.startswith(prefix)}
        wanted = {term_column(t, self.metric): w for t, w in self.terms}
        unknown = sorted(t for t, _ in self.terms if term_column(t, self.metric) not in set(frame_columns))
        if unknown:
            have = sorted(
                {
                    c.split(".", 1)[1] if not c.startswith("task.") else TASK + c[5:]
                    for c in frame_columns
                    if c.startswith((f"{self.metric}.", "task."))
                }
            )
            raise UserError(f"target {self.name!r} names no set or task scored in {source}: {unknown}; scored: {have}")
        return wanted

    def calibrate(self, swarm: pd.DataFrame, source: str = "the proxies") -> Target:
        """For `zmean`: the target with each term's centre and spread over `swarm` (the proxies'
        scores) fixed, so proxies, checks and large runs are all scaled alike. Others: itself."""
        if not self.standardise:
            return self
        cols = self.columns(list(swarm.columns), source)
        values = swarm[list(cols)].to_numpy(float)
        centre, spread = np.nanmean(values, axis=0), np.nanstd(values, axis=0, ddof=1)
        flat = [n for n, s in zip(self.names, spread) if not np.isfinite(s) or s <= 0]
        if flat:
            raise UserError(
                f"target {self.name!r}: no spread over {source} for {flat}: a term the mixtures "
                "do not move cannot be standardised"
            )
        return replace(self, scales=tuple(zip(map(float, centre), map(float, spread))))

    def values(self, scores: pd.DataFrame, source: str) -> np.ndarray:
        """The target of each row of a scores table (prefixed columns: `loss.<set>`, `task.<name>`...)."""
        cols = self.columns(list(scores.columns), source)
        used = scores[list(cols)].astype(float)
        bad = used.isna().sum()
        if bad.any():
            which = ", ".join(f"{c} ({n} rows)" for c, n in bad.items() if n)
            raise UserError(f"{source}: NaN scores for target term(s) {which}")
        x = used.to_numpy(float)
        if self.standardise:
            if self.scales is None:
                raise UserError(
                    f"target {self.name!r} is standardised over the swarm: calibrate it on the "
                    "proxies' scores first (Target.calibrate)"
                )
            centre, spread = np.array(self.scales).T
            x = (x - centre) / spread
        weights = np.array(list(cols.values()))
        return x @ weights / weights.sum()

    def by_name(self, scores: Mapping[str, Mapping[str, float]], source: str) -> dict[str, float]:
        """The target of each named score record ({name: {"loss.<set>": ..., ...}})."""
        table = pd.DataFrame([dict(scores[n]) for n in scores])
        return dict(zip(scores, map(float, self.values(table, source))))


def run_target(params: Mapping[str, Any], domains: Sequence[str], swarm: Optional[pd.DataFrame] = None) -> Target:
    """params' `target` and `target_metric` over the run's training `domains`; a standardised
    aggregate calibrated on the swarm's scores (`swarm`: the proxies table; active rounds left out)."""
    target = Target.parse(params["target"], params.get("target_metric", "loss"), domains)
    if swarm is not None and target.standardise:
        target = target.calibrate(swarm[swarm[ROUND] == 0] if ROUND in swarm else swarm)
    return target


# ------------------------------------------------------- the names a target reads
def slug(name: str) -> str:
    """The one spelling of a domain name: lowercase, non-alphanumerics to `_`, collapsed."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


RESERVED = ("mean", "task")  # target words an evaluation set may not be called


@dataclass(frozen=True)
class EvalSetSpec:
    name: str
    path: Optional[str] = None  # a file or a folder of files
    text_field: str = "text"
    hf_name: Optional[str] = None  # a Hugging Face dataset (hub name), instead of `path`
    hf_config: Optional[str] = None
    split: str = "test"  # the Hugging Face split read

    @property
    def key(self) -> str:
        return f"eval_sets.{self.name}"


def eval_set_specs(value: Mapping[str, Any] | None, domains: list[str] | None = None) -> list[EvalSetSpec]:
    """The sets of params' `eval_sets`, their names and keys checked (against `domains` when known)."""
    specs = []
    for name, spec in (value or {}).items():
        key = f"eval_sets.{name}"
        if not isinstance(name, str) or slug(name) != name or name in RESERVED:
            raise UserError(
                f"{key}: a set's name must be lowercase letters, digits and `_` (as a domain "
                f"name is spelt), and not {' or '.join(RESERVED)}; try {slug(str(name))!r}"
            )
        if domains is not None and name in domains:
            raise UserError(f"{key}: the name is a domain of the corpus too; rename the evaluation set")
        if isinstance(spec, str):
            spec = {"path": spec}
        if not isinstance(spec, Mapping):
            raise UserError(f"{key}: expected a path or {{path, text_field, hf_name, hf_config, split}}, got {spec!r}")
        known = {f.name for f in fields(EvalSetSpec)} - {"name"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise UserError(f"{key}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        parsed = EvalSetSpec(name, **spec)
        if bool(parsed.path) == bool(parsed.hf_name):
            raise UserError(f"{key}: give exactly one of `path` (local files) and `hf_name` (a hub dataset)")
        specs.append(parsed)
    return specs
