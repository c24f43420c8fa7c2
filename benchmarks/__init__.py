"""Benchmarks: speed goals and the measurements behind defaults (never timed tests).

Several replay decisions on RegMix's released swarm (`released_swarm`), where every proxy's
true validation losses are known."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np

from regmix import runtime
from regmix.choose.regression import FittedRegressor, ProxyTable, cross_validate, fit_regressor, read_released
from regmix.config import RegressionConfig, SearchConfig, from_dict
from regmix.target import Target

RELEASED = "../shared/regmix_data"  # beside the project: RegMix's released 1M-parameter proxies


def add_released_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--released", default=RELEASED, help="folder of RegMix's released CSVs")


def released_swarm(folder: str | Path) -> tuple[ProxyTable, ProxyTable]:
    """RegMix's 512 training and 256 test proxies: mixture weights and Pile validation losses."""
    folder = Path(folder)
    return (
        read_released(folder / "train_mixture_1m.csv", folder / "train_pile_loss_1m.csv"),
        read_released(folder / "test_mixture_1m.csv", folder / "test_pile_loss_1m.csv"),
    )


def add_fresh_seed_arguments(parser: argparse.ArgumentParser, store: str, seeds: int) -> None:
    """--seeds (fresh seeds per mixture) and --store (its finished proxies, kept between runs)."""
    parser.add_argument("--seeds", type=int, default=seeds, help="fresh seeds per mixture")
    parser.add_argument(
        "--store",
        default=str(runtime.cache_root() / store),
        help="folder of finished proxies (kept: a rerun trains only what is missing)",
    )


def add_target_arguments(parser: argparse.ArgumentParser, targets: str, n_random: int) -> None:
    parser.add_argument("--targets", default=targets, help="released losses and/or mean, comma-separated, or all")
    parser.add_argument("--random", type=int, default=n_random, help="random weighted means of the released losses")


def fit_with_cv(
    W: np.ndarray, y: np.ndarray, domains: list[str], target: Target, reg: RegressionConfig, seed: int
) -> FittedRegressor:
    """The regressor as the fit stage makes it: fitted on every row, with its out-of-fold predictions."""
    with contextlib.redirect_stderr(io.StringIO()):  # the bootstrap's and the folds' progress bars
        fitted = fit_regressor(W, y, domains, target, reg, seed)
        fitted.out_of_fold = (y, cross_validate(W, y, reg, seed))
    return fitted


def pool_replay(
    released: str | Path, params: dict[str, Any]
) -> tuple[ProxyTable, ProxyTable, np.ndarray, RegressionConfig, SearchConfig]:
    """RegMix's training and test proxies, the test proxies' weights as a pool of candidates (the
    training domains' column order), params.yaml's regression, and its search rule over a pool of
    proxies (the whole pool, k = 1: RegMix's top 100 of 1M is a far smaller share than 1 of 256)."""
    train, test = released_swarm(released)
    default = from_dict(SearchConfig, params["search"], "search.")
    rule = dataclasses.replace(default, top_k=1, candidates=default.n_simulations)
    return (
        train,
        test,
        test.aligned(train.domains),
        from_dict(RegressionConfig, params["regression"], "regression."),
        rule,
    )
