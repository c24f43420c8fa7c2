"""Active rounds: after the initial swarm, train the next proxies where one more most helps the choice.

RegMix trains one fixed swarm. A round fits the acquisition model (`active.regression`, with its
bootstrap members) on every proxy so far, draws `active.candidates` mixtures from the swarm's own
generator (same prior, caps and grid: the round's draws) and proposes `active.batch_size` of them:

  1. the draws' optimum by the search's default rule (`search.rule: lower_confidence`): the lowest
     upper bound of the loss, members' mean + kappa x std, so its proxy-scale loss is measured,
     not only predicted;
  2. the `active.explore` share of the rest where the members disagree most over all draws:
     they keep the regression good everywhere, not only near the choice;
  3. then by `active.rule`:
     lower_confidence  the lowest lower bound of the loss, members' mean - kappa x std (optimistic,
                       unlike the search's rule of that name): promising, or uncertain enough to be
     disagreement      the largest members' std among the `promising` fraction of the draws (those
                       far enough from trained proxies) with the lowest members' mean: where the
                       members disagree about a good region

Every proposal keeps an L1 distance of at least `spacing` x the trained proxies' median
nearest-neighbour L1 from every trained proxy and from each other (one proxy per place). The
round's proxies train like any other (cached, resumable); the next round refits on all of them.
A round is a deterministic function of the proxies before it, so after a kill a rerun proposes the
same mixtures and trains only the missing ones.
"""

from __future__ import annotations

import contextlib
import io
from typing import Callable

import numpy as np
import pandas as pd

from regmix.choose.regression import FittedRegressor, fit_regressor
from regmix.choose.rules import l1_nearest, proxy_spacing
from regmix.choose.sampling import MixtureGenerator, accepted_draws
from regmix.config import ActiveConfig
from regmix.errors import UserError
from regmix.tables import ROUND, mixture_frame
from regmix.target import Target


def fit_acquisition(
    W: np.ndarray, y: np.ndarray, domains: list[str], target: Target, cfg: ActiveConfig, seed: int
) -> FittedRegressor:
    """The acquisition model on the trained proxies (rows of W, columns `domains`)."""
    with contextlib.redirect_stderr(io.StringIO()):  # the bootstrap's bar, once per round
        return fit_regressor(W, y, domains, target, cfg.regression, seed)


def propose(fitted: FittedRegressor, draws: np.ndarray, trained: np.ndarray, cfg: ActiveConfig) -> np.ndarray:
    """Rows of `draws` to train next (`cfg.batch_size`, the draws' optimum first).

    `draws` and `trained` have the fitted model's columns; no row is within the minimum
    distance of a trained proxy or of another row proposed.
    """
    members = np.array([m.predict(draws) for m in fitted.members])
    mean, std = members.mean(axis=0), members.std(axis=0)
    radius = cfg.spacing * float(np.median(proxy_spacing(trained)))
    free = l1_nearest(draws, trained, 1)[0][:, 0] >= radius
    upper_bound = mean + cfg.kappa * std  # the search's lower_confidence score: its optimum comes first
    if cfg.rule == "lower_confidence":
        lower_bound = mean - cfg.kappa * std
        ranking = np.argsort(lower_bound, kind="stable")
    else:  # disagreement
        eligible = np.flatnonzero(free)  # promising among the draws a proposal may be
        promising = eligible[np.argsort(mean[eligible], kind="stable")][: int(np.ceil(cfg.promising * len(eligible)))]
        ranking = promising[np.argsort(-std[promising], kind="stable")]
    explore = int(round(cfg.explore * (cfg.batch_size - 1)))
    picked: list[int] = []
    for order, wanted in (
        (np.argsort(upper_bound, kind="stable"), 1),
        (np.argsort(-std, kind="stable"), 1 + explore),
        (ranking, cfg.batch_size),
    ):
        for j in order:
            if len(picked) == wanted:
                break
            if free[j] and (not picked or np.abs(draws[picked] - draws[j]).sum(axis=1).min() >= radius):
                picked.append(int(j))
    if len(picked) < cfg.batch_size:
        raise UserError(
            f"active.spacing binds: only {len(picked)} of {len(draws)} draws lie at L1 >= "
            f"{radius:.4g} from the trained proxies and each other, active.batch_size is "
            f"{cfg.batch_size}; lower active.spacing or raise active.candidates (or active.promising)"
        )
    return np.array(picked)


def run_rounds(
    initial: pd.DataFrame,
    gen: MixtureGenerator,
    cfg: ActiveConfig,
    target: Target,
    seed: int,
    train: Callable[[pd.DataFrame], pd.DataFrame],
) -> pd.DataFrame:
    """The proxies table of the initial swarm (round 0) and `cfg.rounds` rounds after it.

    `initial` is the swarm's proxies table; `train` trains the proxies of a mixtures table (`id`
    and weight columns in `gen.domains`) and returns its proxies table. Each round's ids continue
    from the rows before it; the table gains a `round` column after `id`.
    """
    table = initial.copy()
    table.insert(1, ROUND, 0)
    for r in range(1, cfg.rounds + 1):
        W = table[gen.domains].to_numpy(float)
        fitted = fit_acquisition(W, target.values(table, "the proxies"), gen.domains, target, cfg, seed + r)
        draws = gen.weights(accepted_draws(gen, np.random.default_rng([seed, r]), cfg.candidates))
        rows = propose(fitted, draws, W, cfg)
        batch = mixture_frame(range(len(table), len(table) + len(rows)), gen.domains, draws[rows])
        trained = train(batch)
        trained.insert(1, ROUND, r)
        table = pd.concat([table, trained], ignore_index=True)
    return table


def combine_stats(rounds: list[dict]) -> dict:
    """One swarm's stats (`regmix.train.swarm.run_swarm`) from those of its rounds, with each round's counts."""
    out = dict(rounds[0])
    if len(rounds) > 1:
        for key in ("proxies", "trained", "scored"):
            out[key] = sum(s[key] for s in rounds)
        out["seconds"] = round(sum(s["seconds"] for s in rounds), 2)
        out["tokens_per_s"] = (
            round(out["trained"] * out["tokens_per_proxy"] / out["seconds"], 1) if out["trained"] else None
        )
        out["proxy_seconds"] = round(sum(s["proxy_seconds"] * s["proxies"] for s in rounds) / out["proxies"], 2)
        out["proxy_tokens_per_s"] = round(out["tokens_per_proxy"] / out["proxy_seconds"], 1)
        out["rounds"] = [
            {"round": r, "proxies": s["proxies"], "trained": s["trained"], "seconds": s["seconds"]}
            for r, s in enumerate(rounds)
        ]
    return out
