"""Seed noise of the proxies: the first swarm mixtures trained again with another seed.

Every proxy of the swarm starts from the same initial weights and draws its batches with the
same seed, so differences between proxies come from the mixtures alone (common random
numbers). Training a few mixtures again with another seed measures how much of a loss is
seed noise: the floor under any regression error, and the size of difference a proxy-scale
comparison cannot resolve. Replicates are never training rows of the regression.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from regmix.tables import LOSS_PREFIX, loss_columns
from regmix.target import Target
from regmix.verdict import pooled_noise

REPLICATE_SEED_OFFSET = 1  # replicates train with seed + 1


def seed_noise(proxies: pd.DataFrame, replicates: pd.DataFrame, target: Target) -> dict[str, Any]:
    """Pooled seed std of every domain's loss and of the target, from (proxy, replicate) pairs.

    Both tables have `id` and `loss.<domain>` columns; rows pair up by `id`.
    """
    pairs = proxies.merge(replicates, on="id", suffixes=("", "#rep"))
    columns = loss_columns(proxies)
    out: dict[str, Any] = {"pairs": len(pairs)}
    if pairs.empty:
        return out

    def std(a: pd.Series, b: pd.Series) -> float:
        return pooled_noise({i: [x, y] for i, (x, y) in enumerate(zip(a, b))}).std

    losses = pairs[columns].rename(columns=lambda c: c[len(LOSS_PREFIX):])
    again = pairs[[c + "#rep" for c in columns]].rename(columns=lambda c: c[len(LOSS_PREFIX):-len("#rep")])
    out["target_std"] = std(pd.Series(target.values(losses, "proxies")), pd.Series(target.values(again, "replicates")))
    out["domain_std"] = {d: std(losses[d], again[d]) for d in losses.columns}
    return out


def domain_spread(proxies: pd.DataFrame, noise: dict[str, Any]) -> pd.DataFrame:
    """Per domain: its loss's mean and std over the swarm beside its seed std (`noise` from
    `seed_noise`). How much the mixture moves a domain's loss against how much the seed alone
    moves it: a domain whose swarm spread is near its seed noise cannot separate mixtures."""
    losses = proxies[loss_columns(proxies)].rename(columns=lambda c: c[len(LOSS_PREFIX):])
    seed_std = noise.get("domain_std", {})
    return pd.DataFrame({"domain": losses.columns, "loss_mean": losses.mean().to_numpy(),
                         "loss_std": losses.std().to_numpy(),
                         "seed_std": [seed_std.get(d, float("nan")) for d in losses.columns]})
