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

from regmix.statistics import pooled_noise
from regmix.tables import LOSS_PREFIX, domain_losses, loss_columns, score_columns
from regmix.target import Target

REPLICATE_SEED_OFFSET = 1  # replicates train with seed + 1


def seed_noise(proxies: pd.DataFrame, replicates: pd.DataFrame, target: Target) -> dict[str, Any]:
    """Pooled seed std of every domain's loss and of the target, from (proxy, replicate) pairs.

    Both tables have `id` and score columns (`loss.<set>`, ...); rows pair up by `id`.
    """
    pairs = proxies.merge(replicates, on="id", suffixes=("", "#rep"))
    columns = loss_columns(proxies)
    out: dict[str, Any] = {"pairs": len(pairs)}
    if pairs.empty:
        return out

    def std(a: pd.Series, b: pd.Series) -> float:
        return pooled_noise({i: [x, y] for i, (x, y) in enumerate(zip(a, b))}).std

    losses, again = _paired_losses(pairs, columns)
    out["target_std"] = pooled_noise(target_pairs(proxies, replicates, target)).std
    out["domain_std"] = {d: std(losses[d], again[d]) for d in losses.columns}
    return out


def _paired_losses(pairs: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The proxies' and the replicates' per-domain losses of merged (proxy, replicate) rows."""
    losses = pairs[columns].rename(columns=lambda c: c[len(LOSS_PREFIX) :])
    again = pairs[[c + "#rep" for c in columns]].rename(columns=lambda c: c[len(LOSS_PREFIX) : -len("#rep")])
    return losses, again


def target_pairs(proxies: pd.DataFrame, replicates: pd.DataFrame, target: Target) -> dict[str, list[float]]:
    """{id: [target loss, target loss with the replicate seed]} of every replicated proxy."""
    pairs = proxies.merge(replicates, on="id", suffixes=("", "#rep"))
    if pairs.empty:
        return {}
    first = target.values(pairs[score_columns(proxies)], "proxies")
    second = target.values(
        pairs[[c + "#rep" for c in score_columns(proxies)]].rename(columns=lambda c: c[: -len("#rep")]), "replicates"
    )
    return {str(i): [float(a), float(b)] for i, a, b in zip(pairs["id"], first, second)}


def domain_spread(proxies: pd.DataFrame, noise: dict[str, Any]) -> pd.DataFrame:
    """Per domain: its loss's mean and std over the swarm beside its seed std (`noise` from
    `seed_noise`). How much the mixture moves a domain's loss against how much the seed alone
    moves it: a domain whose swarm spread is near its seed noise cannot separate mixtures."""
    losses = domain_losses(proxies)
    seed_std = noise.get("domain_std", {})
    return pd.DataFrame(
        {
            "domain": losses.columns,
            "loss_mean": losses.mean().to_numpy(),
            "loss_std": losses.std().to_numpy(),
            "seed_std": [seed_std.get(d, float("nan")) for d in losses.columns],
        }
    )
