"""The search's decision rules (`search.rule`): which candidate mixtures the choice averages.

The candidates are the base model's best `search.candidates` of the simulated pool
(regmix.choose.search), or, in the benchmarks, a pool of proxies whose true losses are known.
The rules use the regression's uncertainty (its bootstrap members) and the trained proxies:

  lower_confidence  (default) average the `top_k` lowest members' mean + `kappa` x members' std: the
                    loss is ranked by an upper bound of its prediction, pessimistic where the bootstrap
                    members disagree (kappa = 0: the bagged mean).
  top_k             RegMix: average the `top_k` lowest base predictions.
  trust_region      only mixtures within L1 `trust_radius` x (median nearest-neighbour L1 among the
                    trained proxies) of some trained proxy are eligible. The best eligible mixture's
                    nearest proxy is the anchor; the `top_k` best eligible mixtures within the radius
                    of that anchor are averaged (an L1 ball is convex, so the average stays inside;
                    should snapping to the grid push it out, the best eligible mixture is chosen).
  band              a k from the noise: average every simulated mixture whose base prediction is
                    within `band` x sigma of the best, sigma = the members' median std at the base's
                    `top_k` best (differences below it are not resolved by the regression).

With `prior_penalty` > 0 every rule's score gains prior_penalty x KL(mixture || prior): a pull
toward the token share, as Olmix and Marin regularise their proposals.

The default is measured, not assumed: `python -m benchmarks.bench_choice` replays every rule on
RegMix's released swarm (fit on 64, 128 or 512 training proxies, choose among the 256 test
proxies, whose true losses are known); lower_confidence's regret is lower than top_k's at every
size there (see that module).

Also the distances the rules, the evidence and the active rounds measure: L1 to the nearest
trained proxies, the swarm's own spacing, KL to the prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from regmix.config import SEARCH_RULES, SearchConfig
from regmix.errors import UserError

RULES = SEARCH_RULES
MEMBER_RULES = ("lower_confidence", "band")  # need bootstrap members
L1_BLOCK = 4_000_000  # elements of one (rows x proxies x domains) block of L1 distances


@dataclass
class Selection:
    """What a rule picked from a set of candidates: the rows it averages, best first."""

    rows: np.ndarray  # indices into the candidates, in the rule's order
    score: np.ndarray  # the rule's score of those rows (lower is better)
    info: dict[str, Any] = field(default_factory=dict)  # the rule's resolved settings and counts
    anchor: Optional[int] = None  # trust_region: the proxy whose ball holds the average
    radius: Optional[float] = None  # trust_region: the L1 radius, in weight units


def l1_nearest(A: np.ndarray, B: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """L1 distances from each row of A to its `k` nearest rows of B, nearest first, and their indices."""
    A, B = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
    k = min(k, len(B))
    dist, idx = np.empty((len(A), k)), np.empty((len(A), k), dtype=np.int64)
    step = max(1, L1_BLOCK // max(1, B.size))
    for s in range(0, len(A), step):
        D = np.abs(A[s : s + step, None, :] - B[None, :, :]).sum(axis=2)
        part = np.argpartition(D, k - 1, axis=1)[:, :k] if len(B) > k else np.tile(np.arange(len(B)), (len(D), 1))
        order = np.argsort(np.take_along_axis(D, part, axis=1), axis=1, kind="stable")
        idx[s : s + step] = np.take_along_axis(part, order, axis=1)
        dist[s : s + step] = np.take_along_axis(D, idx[s : s + step], axis=1)
    return dist, idx


def proxy_spacing(P: np.ndarray) -> np.ndarray:
    """Each trained proxy's L1 distance to its nearest other proxy (the swarm's own scale)."""
    if len(P) < 2:
        raise UserError(f"{len(P)} trained proxy: the swarm's spacing needs at least 2")
    dist, _ = l1_nearest(P, P, 2)
    return dist[:, 1]


def kl_to_prior(W: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """KL(w || prior) of each row w of W, in nats (inf where w weighs a domain the prior does not)."""
    W, prior = np.asarray(W, dtype=float), np.asarray(prior, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(W > 0, W * np.log(W / prior), 0.0)
    return terms.sum(axis=1)


def select(
    cfg: SearchConfig,
    W: np.ndarray,
    pred: np.ndarray,
    member_pred: Optional[np.ndarray] = None,
    proxies: Optional[np.ndarray] = None,
    prior: Optional[np.ndarray] = None,
) -> Selection:
    """Apply `cfg.rule` to candidate mixtures W (rows), their base predictions and, where the rule
    needs them, the members' predictions (m, n) or the trained proxies (same columns as W). With
    `cfg.prior_penalty` > 0, every score gains prior_penalty x KL(w || prior) (`prior`: same columns).

    The search calls it on the base model's best `candidates` of the simulated pool (sorted,
    best first; `band` reads the members only at the base's best `top_k`); the benchmark on a
    pool of proxies whose true losses are known.
    """
    pred = base = np.asarray(pred, dtype=float)
    penalty = 0.0
    if cfg.prior_penalty > 0:
        if prior is None:
            raise UserError("search.prior_penalty needs the prior mixture")
        penalty = cfg.prior_penalty * kl_to_prior(W, prior)
        pred = pred + penalty
    k = min(cfg.top_k, len(pred))
    by_pred = np.argsort(pred, kind="stable")
    if cfg.rule == "top_k":
        rows = by_pred[:k]
        return Selection(rows, pred[rows], {"top_k": cfg.top_k})
    if cfg.rule in MEMBER_RULES:
        if member_pred is None or len(member_pred) < 2:
            raise UserError(
                f"search.rule={cfg.rule} needs the regressor's bootstrap members: set "
                "regression.n_bootstrap >= 2 and re-run the fit stage (dvc repro fit)"
            )
        mean, std = member_pred.mean(axis=0), member_pred.std(axis=0)
    if cfg.rule == "lower_confidence":
        upper_bound = mean + cfg.kappa * std + penalty  # of the loss: lower is better
        rows = np.argsort(upper_bound, kind="stable")[:k]
        return Selection(rows, upper_bound[rows], {"top_k": cfg.top_k, "kappa": cfg.kappa})
    if cfg.rule == "band":
        # at the base's best top_k: the rows the search's members scored (the penalty may reorder them)
        sigma = float(np.median(std[np.argsort(base, kind="stable")[:k]]))
        threshold = float(pred[by_pred[0]] + cfg.band * sigma)
        rows = by_pred[: int(np.count_nonzero(pred <= threshold))]
        return Selection(rows, pred[rows], {"band": cfg.band, "sigma": sigma, "threshold": threshold})
    if cfg.rule == "trust_region":
        return _trust_region(cfg, W, pred, by_pred, proxies)
    raise UserError(f"search.rule: unknown rule {cfg.rule!r}; choose one of {', '.join(RULES)}")


def _trust_region(
    cfg: SearchConfig, W: np.ndarray, pred: np.ndarray, by_pred: np.ndarray, proxies: Optional[np.ndarray]
) -> Selection:
    """trust_region's pick: the best `top_k` eligible candidates within the radius of the best one's
    nearest proxy (`pred`: the scores, penalty included; `by_pred`: their order)."""
    if proxies is None:
        raise UserError("search.rule=trust_region needs the trained proxies (results/proxies.csv)")
    spacing = float(np.median(proxy_spacing(proxies)))
    radius = cfg.trust_radius * spacing
    near, which = l1_nearest(W, proxies, 1)
    eligible = by_pred[near[by_pred, 0] <= radius]
    if len(eligible) == 0:
        raise UserError(
            f"search.rule=trust_region: none of the best {len(pred)} mixtures lies within L1 {radius:.4g} "
            f"(search.trust_radius {cfg.trust_radius} x the proxies' median spacing {spacing:.4g}) of a "
            f"trained proxy (nearest: {near.min():.4g}); raise search.candidates or search.trust_radius"
        )
    anchor = int(which[eligible[0], 0])
    in_ball = eligible[np.abs(W[eligible] - proxies[anchor]).sum(axis=1) <= radius]
    rows = in_ball[: min(cfg.top_k, len(pred))]
    info = {
        "top_k": cfg.top_k,
        "trust_radius": cfg.trust_radius,
        "radius_l1": radius,
        "proxy_spacing_median": spacing,
        "eligible": int(len(eligible)),
        "in_anchor_ball": int(len(in_ball)),
    }
    return Selection(rows, pred[rows], info, anchor, radius)
