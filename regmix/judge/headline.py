"""The few figures `dvc metrics show` and `dvc exp show` display: one small file per stage.

Each stage writes its whole record to `results/` (every number the report, the README and the
benchmarks read) and its headline to `metrics/`: flat, short names, so that the four files side
by side fit a 200-column terminal. A figure a stage cannot give (no replicates, no cheap baseline
compared) is None, which DVC shows as `-`.
"""

from __future__ import annotations

from typing import Any


def proxies(record: dict[str, Any]) -> dict[str, Any]:
    """How many proxies (and how many this run trained rather than took back from the store), and
    the seed noise of their target loss (from the replicates)."""
    return {
        "proxies": record["proxies"],
        "trained": record["trained"],
        "seed_std": (record.get("seed_noise") or {}).get("target_std"),
    }


def fit(record: dict[str, Any]) -> dict[str, Any]:
    """How well the regression ranks and predicts held-out proxies, and the smallest predicted
    difference it resolves."""
    resolution = record.get("resolution") or {}
    return {
        "cv_spearman": record["cv"]["spearman"],
        "cv_rmse": record["cv"]["rmse"],
        "resolution": resolution.get("smallest_resolved_difference"),
    }


def verify(record: dict[str, Any]) -> dict[str, Any]:
    """Which step decided the mixture, and its gain over the prior measured on fresh proxy seeds."""
    over_prior = record.get("over_prior") or {}
    return {"decided_by": record["decision"]["decided_by"], "gain_over_prior": over_prior.get("measured")}


def evaluate(results: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """regmix's target loss at the large scale, the best cheap baseline's, and regmix's rank
    (`results`: the evaluation's entry per mixture; `summary`: its summary)."""
    baseline = (summary.get("best_cheap") or {}).get("mixture")
    return {
        "regmix_loss": (results.get("regmix") or {}).get("target_loss"),
        "baseline": baseline,
        "baseline_loss": results[baseline]["target_loss"] if baseline else None,
        "regmix_rank": summary.get("regmix_rank"),
    }
