"""The proxies a regressor learns from: mixture weights and per-domain validation losses.

Two sources: the pipeline's results/proxies.csv, and RegMix's released CSV pairs (a mixture
file and a loss file joined on their index column).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regmix.errors import UserError
from regmix.tables import LOSS_PREFIX, domain_losses, read_csv, score_columns, weight_columns
from regmix.target import Target


@dataclass
class ProxyTable:
    """Mixture weights and validation scores (regmix.target's prefixed columns) of trained proxies."""

    ids: list[str]
    domains: list[str]  # weight columns, in the order of W's columns
    weights: np.ndarray  # [n, len(domains)]
    scores: pd.DataFrame  # `loss.<set>`, `bpb.<set>`, `task.<name>`... columns, n rows
    source: str  # file name(s), for error messages

    def aligned(self, domains: list[str]) -> np.ndarray:
        """The weights with columns in `domains` order; both sets of domains must agree."""
        missing, extra = sorted(set(domains) - set(self.domains)), sorted(set(self.domains) - set(domains))
        if missing or extra:
            raise UserError(
                f"{self.source}: mixture domains differ from the training set's (missing {missing}, extra {extra})"
            )
        return self.weights[:, [self.domains.index(d) for d in domains]]

    @property
    def losses(self) -> pd.DataFrame:
        """The `loss.<set>` scores, one column per set named by the set."""
        return domain_losses(self.scores)

    def target_values(self, target: Target) -> np.ndarray:
        """The regression target of every proxy."""
        return target.values(self.scores, self.source)

    def best(self, target: Target) -> tuple[str, dict[str, float]]:
        """(id, weights) of the proxy with the lowest measured target loss."""
        i = int(np.argmin(self.target_values(target)))
        return self.ids[i], dict(zip(self.domains, map(float, self.weights[i])))

    def ranked(self, target: Target) -> list[dict[str, float]]:
        """Every proxy's weights, lowest measured target loss first (ties in table order)."""
        order = np.argsort(self.target_values(target), kind="stable")
        return [dict(zip(self.domains, map(float, self.weights[i]))) for i in order]


def _check_loss_domains(loss_domains: list[str], source: str) -> None:
    if not loss_domains:
        raise UserError(f"{source}: no loss columns")


def read_proxies(path: str | Path) -> ProxyTable:
    """results/proxies.csv: `id`, one weight column per domain, the score columns of every scored set."""
    return proxy_table(read_csv(path), str(path))


def proxy_table(frame: pd.DataFrame, source: str) -> ProxyTable:
    """A proxies table (regmix.train.swarm.run_swarm's, or read from a CSV named `source`)."""
    domains = weight_columns(frame)
    _check_loss_domains(list(domain_losses(frame).columns), source)
    ids = frame["id"].astype(str).tolist() if "id" in frame else [str(i) for i in range(len(frame))]
    return ProxyTable(
        ids,
        domains,
        frame[domains].to_numpy(float),
        frame[score_columns(frame)].reset_index(drop=True).astype(float),
        source,
    )


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
    _check_loss_domains(list(loss.columns), source)
    keys = mix.index.intersection(loss.index)
    if len(keys) == 0:
        raise UserError(f"{source}: no index value appears in both files")
    if len(keys) < max(len(mix), len(loss)):
        print(
            f"note: {source}: {len(mix) - len(keys)} mixture and {len(loss) - len(keys)} loss rows "
            "have no partner and are left out"
        )
    mix, loss = mix.loc[keys], loss.loc[keys]
    return ProxyTable(
        [str(k) for k in keys],
        list(mix.columns),
        mix.to_numpy(float),
        loss.reset_index(drop=True).add_prefix(LOSS_PREFIX),
        source,
    )


def released_pair(spec: Any, key: str) -> ProxyTable:
    """A `{mixtures, losses}` entry of regression.train_set / eval_sets, read and joined."""
    if not isinstance(spec, dict) or set(spec) != {"mixtures", "losses"}:
        raise UserError(f"{key} must be a mapping with exactly the keys `mixtures` and `losses`, got {spec!r}")
    return read_released(spec["mixtures"], spec["losses"])
