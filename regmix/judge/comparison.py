"""The large-scale comparison: per-seed scores -> each mixture's mean and interval, the verdict
on `regmix`, and predicted against measured target loss.

Predictions are honest: a compared mixture that is a row of the proxy swarm (`best_proxy`,
`random_<k>`) gets the out-of-fold prediction of the cross-validation fold that did not train
on it; other mixtures (`regmix`, baselines) get the final regressor's, which never saw them.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from regmix.choose.mixture_files import CHOSEN
from regmix.files import no_nan
from regmix.mixtures import NO_PROXY
from regmix.statistics import (
    POWER,
    SeedNoise,
    compare,
    holm,
    interval,
    pooled_noise,
    resolvable,
    spearman_interval,
    spread,
    wilson,
)

TASKS = ("last_word", "continuation")
SUMMARY = "summary"  # the key of results/evaluation.json that holds no mixture


def out_of_fold(
    mixtures: Mapping[str, Mapping[str, float]], swarm: pd.DataFrame, cv: pd.DataFrame, tol: float = 1e-9
) -> dict[str, float]:
    """Out-of-fold predictions of the compared mixtures that are swarm rows.

    `swarm`: `id` and one weight column per domain; `cv`: the fit's `cv` rows (`id`, `predicted`).
    """
    by_id = dict(zip(cv["id"].astype(str), cv["predicted"].astype(float)))
    domains = [c for c in swarm.columns if c != "id"]
    W = swarm[domains].to_numpy(float)
    out = {}
    for name, mixture in mixtures.items():
        w = np.array([mixture.get(d, 0.0) for d in domains])
        rows = np.flatnonzero(np.abs(W - w).max(axis=1) <= tol)
        ids = [str(swarm["id"].iloc[r]) for r in rows if str(swarm["id"].iloc[r]) in by_id]
        if ids:
            out[name] = by_id[ids[0]]
    return out


def _mean_dicts(dicts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([d[k] for d in dicts])) for k in (dicts[0] if dicts else {})}


def _downstream(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each task's accuracy (and a user task's gold bits per byte) averaged over seeds, with a
    Wilson 95% interval on its examples."""
    out: dict[str, Any] = {}
    user_tasks = [t for t in per_seed[0] if t.startswith("task:")] if per_seed else []
    for task in [*TASKS, *user_tasks]:
        if all(task in d for d in per_seed):
            runs = [d[task] for d in per_seed]
            n = runs[0]["examples"]
            accuracy = float(np.mean([r["accuracy"] for r in runs]))
            out[task] = {
                "accuracy": accuracy,
                "ci95": list(wilson(accuracy * n, n)),
                "examples": n,
                **({"chance": runs[0]["chance"]} if "chance" in runs[0] else {}),
                **({"bpb": float(np.mean([r["bpb"] for r in runs]))} if "bpb" in runs[0] else {}),
            }
    return out


def summarise(
    runs: Mapping[str, Mapping[int, Mapping[str, Any]]],
    predicted: Mapping[str, float],
    prediction_source: Mapping[str, str],
    seed: int = 0,
    runs_of: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """results/evaluation.json: one entry per mixture, then `summary` (noise, rank, verdict, rho).

    `runs`: {mixture: {seed: {"target_loss", "domain_loss", "downstream"}}} from evaluate_runs.
    `runs_of`: {mixture: `regmix`} for mixtures scored on `regmix`'s runs (regmix.choose.mixture_files.shared_runs):
    listed, not compared with it, ranked or counted in the rank correlation.
    """
    runs_of = runs_of or {}
    losses = {name: [r["target_loss"] for r in by_seed.values()] for name, by_seed in runs.items()}
    noise = pooled_noise(losses)
    reference = losses.get(CHOSEN)
    out: dict[str, Any] = {}
    tested = holm(
        {
            name: compare(losses[name], reference, noise)
            for name in runs
            if reference is not None and name != CHOSEN and name not in runs_of
        }
    )
    for name, by_seed in runs.items():
        mean, low, high = interval(losses[name], noise)
        entry = {
            "target_loss": mean,
            "target_loss_ci95": [low, high],
            "seeds": len(by_seed),
            "seed_std": spread(losses[name], noise).std if len(by_seed) > 1 else None,
            "target_loss_per_seed": losses[name],
            "predicted": predicted.get(name, math.nan),
            "predicted_by": prediction_source.get(name),
            "domain_loss": _mean_dicts([r["domain_loss"] for r in by_seed.values()]),
            "bpb": _mean_dicts([r.get("bpb", {}) for r in by_seed.values()]),
            "downstream": _downstream([r["downstream"] for r in by_seed.values()]),
        }
        if name in runs_of:
            entry["runs_of"] = runs_of[name]
        elif name in tested:
            entry["vs_regmix"] = tested[name].as_dict()
        out[name] = entry
    out[SUMMARY] = _summary(out, noise, seed)
    return no_nan(out)


def over_prior(choice: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the search said of `regmix` against `prior` before any large run: results/mixture.yaml's
    `confidence.prior` (on a chosen trained proxy's estimate, as the search judged it); None without it."""
    return choice.get("confidence", {}).get("prior")


def _summary(entries: Mapping[str, Mapping[str, Any]], noise: SeedNoise, seed: int) -> dict[str, Any]:
    names = sorted(entries, key=lambda n: entries[n]["target_loss"])
    distinct = [n for n in names if "runs_of" not in entries[n]]  # each mixture's runs once
    measured = [entries[n]["target_loss"] for n in distinct]
    predicted = [entries[n]["predicted"] for n in distinct]
    known = [i for i, p in enumerate(predicted) if not math.isnan(p)]
    rho, low, high, n = spearman_interval([predicted[i] for i in known], [measured[i] for i in known], seed)
    verdicts = {n: entries[n]["vs_regmix"]["verdict"] for n in names if "vs_regmix" in entries[n]}
    return {
        "mixtures": len(distinct),
        "ranking": names,
        "regmix_rank": distinct.index(CHOSEN) + 1 if CHOSEN in distinct else None,
        "runs_of_regmix": [n for n in names if entries[n].get("runs_of") == CHOSEN],
        "seed_noise": {"std": noise.std, "df": noise.df},
        "verdict": {
            kind: [n for n, v in verdicts.items() if v == kind]
            for kind in ("better", "worse", "not distinguishable", "unknown")
        },
        "spearman": {"rho": rho, "ci95": [low, high], "n": n},
        "best_cheap": best_cheap(entries),
        "resolves": resolves(entries, noise),
    }


def resolves(entries: Mapping[str, Mapping[str, Any]], noise: SeedNoise) -> dict[str, Any] | None:
    """The smallest difference from `regmix` the verdict calls with 80% power, at the pooled seed std,
    `regmix`'s seeds and the fewest seeds of a compared mixture. None without `regmix`, a comparison or noise."""
    compared = [e["seeds"] for e in entries.values() if "vs_regmix" in e]
    if CHOSEN not in entries or not compared or not noise.known:
        return None
    seeds, fewest = entries[CHOSEN]["seeds"], min(compared)
    return {
        "difference": resolvable(noise.std, seeds, fewest, len(compared)),
        "power": POWER,
        "tests": len(compared),
        "seeds": seeds,
        "fewest_seeds": fewest,
    }


def best_cheap(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """`regmix` minus the cheap baseline (compare.NO_PROXY) that measured lowest: what the proxies bought
    (negative: `regmix` lower). None when no cheap baseline was compared with `regmix`."""
    cheap = [n for n in NO_PROXY if "vs_regmix" in entries.get(n, {})]
    if not cheap:
        return None
    name = min(cheap, key=lambda n: entries[n]["target_loss"])
    vs = entries[name]["vs_regmix"]
    low, high = vs["ci95"]
    return {
        "mixture": name,
        "regmix_minus": -vs["difference"],
        "ci95": [None if high is None or math.isnan(high) else -high, None if low is None or math.isnan(low) else -low],
        "p_holm": vs["p_holm"],
        "verdict": {"worse": "regmix better", "better": "regmix worse"}.get(vs["verdict"], vs["verdict"]),
    }
