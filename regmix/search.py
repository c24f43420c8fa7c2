"""Search the mixture space with the fitted regressor: simulate, predict, average the top-k.

RegMix's recipe: draw many mixtures from the same generator as the proxy swarm, predict the
target loss of each, and average the `top_k` best into the chosen mixture (one prediction
is noisy; the average of the best region is robust). Each bootstrap member of the regressor
repeats the choice on the same simulated pool, which gives a spread per chosen weight.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from tqdm import tqdm

from regmix.config import SearchConfig
from regmix.errors import UserError
from regmix.sampling import MixtureGenerator, accepted_draws
from regmix.plots import plt, save
from regmix.regression import FittedRegressor, Predictor, predict_mixtures


@dataclass
class TopK:
    """The `k` lowest predictions seen so far and their mixtures, best first."""

    W: np.ndarray  # (k, d)
    pred: np.ndarray  # (k,)

    @classmethod
    def of(cls, W: np.ndarray, pred: np.ndarray, k: int) -> TopK:
        idx = np.argpartition(pred, k - 1)[:k] if len(pred) > k else np.arange(len(pred))
        idx = idx[np.argsort(pred[idx], kind="stable")]
        return cls(W[idx], pred[idx])

    def merge(self, other: TopK, k: int) -> TopK:
        return TopK.of(np.concatenate([self.W, other.W]), np.concatenate([self.pred, other.pred]), k)


@dataclass
class SearchResult:
    domains: list[str]
    chosen: np.ndarray  # (d,) the average of the top-k, on the grid and within the caps
    top: TopK  # the regressor's own top-k
    member_choices: np.ndarray  # (m, d) each bootstrap member's chosen mixture (m may be 0)
    n_simulations: int
    spread_simulations: int  # simulated mixtures the members searched


def search(model: FittedRegressor, gen: MixtureGenerator, cfg: SearchConfig, seed: int,
           threads: int = 1) -> SearchResult:
    """Simulate `cfg.n_simulations` mixtures from `gen`, chunk by chunk, and choose one.

    Chunks draw from independent seeds spawned from `seed`, so the result does not depend
    on `threads`. Each chunk keeps only its top-k per predictor, so memory stays at one
    chunk per worker whatever `n_simulations` is. Bootstrap members search the first
    `spread_simulations` of the same pool (whole chunks): each costs as much as the model.
    """
    _check(cfg)
    cols = _columns(model.domains, gen.domains)
    predictors: list[Predictor] = [model, *model.members]
    n_chunks = -(-cfg.n_simulations // cfg.chunk_size)
    seeds = np.random.SeedSequence(seed).spawn(n_chunks)
    spread_end = cfg.n_simulations if cfg.spread_simulations is None else cfg.spread_simulations

    def run_chunk(i: int) -> list[TopK]:
        size = min(cfg.chunk_size, cfg.n_simulations - i * cfg.chunk_size)
        W = gen.weights(accepted_draws(gen, np.random.default_rng(seeds[i]), size))
        X = np.ascontiguousarray(W[:, cols])
        used = predictors if i * cfg.chunk_size < spread_end else predictors[:1]
        return [TopK.of(W, np.asarray(p.predict(X), dtype=float), cfg.top_k) for p in used]

    tops: list[TopK] | None = None
    with ThreadPoolExecutor(threads) as pool:
        done = pool.map(run_chunk, range(n_chunks))
        for chunk in tqdm(done, total=n_chunks, desc="search", unit="chunk", leave=False):
            if tops is None:
                tops = chunk
            else:  # chunks past `spread_simulations` carry the model's top-k alone
                tops[: len(chunk)] = [t.merge(c, cfg.top_k) for t, c in zip(tops, chunk)]
    assert tops is not None
    chosen = gen.project(tops[0].W.mean(axis=0))
    members = np.array([gen.project(t.W.mean(axis=0)) for t in tops[1:]]).reshape(-1, len(gen.domains))
    spread_n = min(cfg.n_simulations, -(-spread_end // cfg.chunk_size) * cfg.chunk_size)
    return SearchResult(gen.domains, chosen, tops[0], members, cfg.n_simulations, spread_n)


def summary(result: SearchResult, model: FittedRegressor, baselines: Mapping[str, Mapping[str, float]]) -> dict:
    """results/mixture.yaml: the chosen `train:` mixture (RegMix's config shape) and evidence."""
    chosen = dict(zip(result.domains, map(float, result.chosen)))
    pred = result.top.pred
    spread: dict = {
        "top_k_predicted": {"min": float(pred.min()), "max": float(pred.max()), "std": float(pred.std())},
        "members": len(result.member_choices),
        "members_searched": result.spread_simulations,
    }
    if len(result.member_choices) > 1:
        std = result.member_choices.std(axis=0, ddof=1)
        spread["weight_std"] = {d: round(float(s), 6) for d, s in zip(result.domains, std)}
    return {
        "train": {d: round(w, 6) for d, w in chosen.items()},
        "predicted_target": predict_mixtures(model, {"chosen": chosen})["chosen"],
        "top_k_mean_predicted": float(pred.mean()),
        "baselines": {
            name: {"predicted_target": p} for name, p in predict_mixtures(model, baselines).items()
        },
        "spread": spread,
        "n_simulations": result.n_simulations,
        "top_k": len(pred),
    }


def plot_choice(path: str, result: SearchResult, baselines: Mapping[str, Mapping[str, float]]) -> None:
    """Bar chart per domain: the chosen mixture (with member spread) against the baselines."""
    domains = result.domains
    bars = {"chosen": result.chosen, **{n: np.array([m[d] for d in domains]) for n, m in baselines.items()}}
    width = 0.8 / len(bars)
    x = np.arange(len(domains))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(domains) + 2), 4.5))
    err = result.member_choices.std(axis=0, ddof=1) if len(result.member_choices) > 1 else None
    for i, (name, w) in enumerate(bars.items()):
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, w, width, label=name, yerr=err if name == "chosen" else None)
    ax.set_xticks(x, domains, rotation=60, ha="right")
    ax.set_ylabel("weight")
    ax.set_title(f"chosen mixture: mean of the top {len(result.top.pred)} of {result.n_simulations:,} simulated")
    ax.legend()
    save(fig, path, dpi=120)


def _check(cfg: SearchConfig) -> None:
    for key in ("n_simulations", "top_k", "chunk_size", "spread_simulations"):
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise UserError(f"search.{key}: {getattr(cfg, key)} must be >= 1")
    if cfg.top_k > cfg.n_simulations:
        raise UserError(f"search.top_k: {cfg.top_k} is more than search.n_simulations ({cfg.n_simulations})")


def _columns(fitted: Sequence[str], domains: Sequence[str]) -> list[int]:
    """Column order taking mixtures over `domains` to the regressor's own domain order."""
    if sorted(fitted) != sorted(domains):
        raise UserError(
            f"data/regression was fitted on domains {', '.join(fitted)} but results/domains.json has "
            f"{', '.join(domains)}: re-run the fit stage (dvc repro fit)"
        )
    return [list(domains).index(d) for d in fitted]
