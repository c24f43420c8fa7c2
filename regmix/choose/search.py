"""Search the mixture space with the fitted regressor: simulate, predict, choose one mixture.

RegMix's recipe: draw many mixtures from the same generator as the proxy swarm, predict the
target loss of each, and average the `top_k` best into the chosen mixture (one prediction is
noisy; the average of the best region is robust). `search.rule` says which of the best
mixtures are averaged (regmix.choose.rules: lower_confidence, top_k, trust_region, band).
That average can land where no proxy was trained, so the choice is reported with its evidence
(regmix.choose.choice).

The rule's choice is the regression's answer (`train:` in the mixture file). Two steps weigh it
and may only propose another mixture (regmix.choose.decision; the `verify` stage's fresh seeds decide):

  incumbent    the measured proxies compete: the rule's choice is only predicted, while each
               trained proxy was measured. Each proxy's loss is estimated from its measurement y
               (seed std s) and the regression's out-of-fold prediction p there, whose error beyond
               the seed noise is e (e^2 = mean squared out-of-fold error - s^2): the precision-weighted
               mean p + w (y - p), w = e^2 / (e^2 + s^2), shrinks the lowest of many noisy
               measurements back by what is likely luck. The best-estimated proxy is proposed when
               its estimate is below the choice's prediction by more than `incumbent_margin` x the
               fit's resolution (`FittedRegressor.resolution`); a smaller gap is one the regression
               cannot tell from none. It needs the replicates' seed noise and the out-of-fold predictions.
  prior_guard  where the out-of-fold evidence cannot tell the choice from the prior (the probability
               that a mixture predicted that much lower truly is lower, `FittedRegressor.beats`, is
               below `min_confidence`), the prior is proposed.

Cost: the base model predicts every simulated mixture (the compiled LightGBM: about a second
per 1M). The members are slower (plain LightGBM), so the rules that need their predictions
score only the base model's best `candidates` mixtures of the whole pool (exact, merged over
chunks), and the trust rule measures distances for those alone: a mixture outside the base's
best `candidates` cannot be chosen. `band` averages the whole pool within the band (exactly:
when the band spills past the candidates, the chunks holding in-band mixtures are drawn again
from their seeds). Each bootstrap member also repeats RegMix's top-k choice on the first
`spread_simulations` of the same pool, which gives a spread per chosen weight.

Every random choice comes from `seed` (chunks draw from seeds spawned from it: regmix.choose.pool),
so the result does not depend on `threads`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from regmix.choose.decision import INCUMBENT, PRIOR_GUARD
from regmix.choose.pool import Pool, TopK, band_sum, scan
from regmix.choose.regression import FittedRegressor
from regmix.choose.rules import MEMBER_RULES, RULES, Selection, kl_to_prior, select
from regmix.choose.sampling import MixtureGenerator
from regmix.config import SearchConfig
from regmix.errors import UserError


@dataclass
class SearchResult:
    """What the search found: the rule's choice, the mixtures it averaged, the members' own choices and
    what the incumbent and the prior guard say of it."""

    domains: list[str]
    chosen: np.ndarray  # (d,) the rule's choice, on the grid and within the caps: the regression's answer
    top: TopK  # the mixtures averaged into the choice (at most `candidates`), rule order; base predictions
    member_choices: np.ndarray  # (m, d) each bootstrap member's top-k choice (m may be 0)
    n_simulations: int
    spread_simulations: int  # simulated mixtures the members searched
    rule: str = "top_k"
    averaged: int = 0  # mixtures averaged into the choice (band: may exceed len(top))
    score: Optional[np.ndarray] = None  # the rule's score of `top` (lower_confidence: mean + kappa x std)
    info: dict[str, Any] = field(default_factory=dict)  # the rule's settings and counts
    usage: dict[str, dict[str, float]] = field(default_factory=dict)  # per domain: weight, cap, large-run epochs
    over_prior: Optional[dict[str, Any]] = None  # the choice against the prior (FittedRegressor.beats)
    incumbent: Optional[dict[str, Any]] = None  # the best-estimated trained proxy against the rule's choice
    # step -> the mixture it proposes in the choice's place
    nominees: dict[str, np.ndarray] = field(default_factory=dict)


def incumbent(
    model: FittedRegressor,
    proxies: Optional[np.ndarray],
    proxy_ids: Optional[Sequence[str]],
    gen: MixtureGenerator,
    chosen: np.ndarray,
    margin: float = 1.0,
) -> tuple[dict[str, Any], Optional[np.ndarray]]:
    """The trained proxy with the lowest estimated target loss (see the module docstring) against
    the predicted loss of `chosen`: (what was weighed, the proxy's weights when it wins). It wins
    only when estimated lower by more than `margin` x the fit's resolution (`FittedRegressor.resolution`):
    a smaller difference is one the regression cannot tell from none.

    `proxies` and `chosen`: weights with columns in `gen.domains` order; `proxies`' rows in
    `proxy_ids` order. Proxies outside the generator's caps are not eligible. Without the seed
    noise, the out-of-fold predictions or their ids, the dict says why nothing was weighed.
    """
    if model.seed_std is None or not np.isfinite(model.seed_std):
        return {"skipped": "no seed noise: train replicates (proxy.replicates >= 1) and re-run the fit"}, None
    if model.out_of_fold is None or model.proxy_ids is None:
        return {"skipped": "the regressor has no out-of-fold predictions by proxy id: re-run the fit stage"}, None
    if proxies is None or proxy_ids is None:
        return {"skipped": "no trained proxies given"}, None
    row_of = {str(i): r for r, i in enumerate(proxy_ids)}
    y, p = model.out_of_fold
    known = [k for k, i in enumerate(model.proxy_ids) if i in row_of]
    if not known:
        return {"skipped": "none of the regressor's training proxies is in the proxies table"}, None
    rows = np.array([row_of[model.proxy_ids[k]] for k in known])
    y, p = y[known], p[known]
    noise = float(model.seed_std) ** 2
    error = max(float(np.mean((y - p) ** 2)) - noise, 0.0)  # the regression's own error, past the noise
    weight = error / (error + noise) if error + noise > 0 else 1.0
    estimate = p + weight * (y - p)
    eligible = np.all(np.rint(proxies[rows] * gen.units) <= gen.caps, axis=1)
    if not eligible.any():
        return {"skipped": "every trained proxy is outside the caps"}, None
    best = int(np.flatnonzero(eligible)[np.argmin(estimate[eligible])])
    versus = float(model.predict(chosen[regressor_columns(model.domains, gen.domains)][None, :])[0])
    resolution = model.resolution()
    needed = None if resolution is None else margin * resolution
    wins = needed is not None and bool(versus - estimate[best] > needed)
    info = {
        "proxy": str(model.proxy_ids[known[best]]),
        "measured": float(y[best]),
        "out_of_fold": float(p[best]),
        "estimate": float(estimate[best]),
        "weight_on_measurement": weight,
        "seed_std": float(model.seed_std),
        "error_std": float(np.sqrt(error)),
        "proxies": int(eligible.sum()),
        "versus_predicted": float(versus),
        "margin": margin,
        "resolution": resolution,
        "margin_nats": needed,
        "chosen": wins,
    }
    return info, (proxies[rows[best]].copy() if wins else None)


def search(
    model: FittedRegressor,
    gen: MixtureGenerator,
    cfg: SearchConfig,
    seed: int,
    threads: int = 1,
    proxies: Optional[np.ndarray] = None,
    proxy_ids: Optional[Sequence[str]] = None,
) -> SearchResult:
    """Simulate `cfg.n_simulations` mixtures from `gen`, chunk by chunk, and choose one by `cfg.rule`.

    Chunks draw from independent seeds spawned from `seed`, so the result does not depend
    on `threads`. Each chunk keeps only its best rows per predictor (the top-k, or the best
    `candidates` for the uncertainty rules), so memory stays at one chunk per worker whatever
    `n_simulations` is (`band` also keeps every base prediction, 8 bytes a mixture). Bootstrap
    members search the first `spread_simulations` of the same pool (whole chunks): each costs
    as much as the model. `proxies`: the trained proxies' weights, columns in `gen.domains`
    order (needed by `trust_region`), rows in `proxy_ids` order (needed by `incumbent`).
    """
    _check(cfg, proxies)
    if cfg.rule in MEMBER_RULES and len(model.members) < 2:
        raise UserError(
            f"search.rule={cfg.rule} needs the regressor's bootstrap members: set "
            "regression.n_bootstrap >= 2 and re-run the fit stage (dvc repro fit)"
        )
    cols = regressor_columns(model.domains, gen.domains)
    pool = Pool(gen, cfg.n_simulations, cfg.chunk_size, seed)
    spread_end = cfg.n_simulations if cfg.spread_simulations is None else cfg.spread_simulations
    tops, preds = scan(model, pool, cfg, cols, spread_end, threads)
    best = tops[0]
    sel = select(cfg, best.W, best.pred, _member_predictions(model, best, cfg, cols), proxies, gen.prior)
    chosen, rows, info = _average(cfg, sel, best, pool, preds, proxies, threads)
    members = np.array([gen.project(t.W.mean(axis=0)) for t in tops[1:]]).reshape(-1, len(gen.domains))
    spread_n = min(cfg.n_simulations, -(-spread_end // cfg.chunk_size) * cfg.chunk_size)
    measured, over_prior, nominees = _nominate(model, gen, cfg, chosen, cols, proxies, proxy_ids)
    return SearchResult(
        gen.domains,
        chosen,
        TopK(best.W[rows], best.pred[rows]),
        members,
        cfg.n_simulations,
        spread_n,
        cfg.rule,
        info["averaged"],
        sel.score[: len(rows)],
        info,
        gen.usage(chosen),
        over_prior,
        measured,
        nominees,
    )


def _member_predictions(model: FittedRegressor, best: TopK, cfg: SearchConfig, cols: list[int]) -> Optional[np.ndarray]:
    """The members' predictions (m, n) of the base's best mixtures, for the rules that read them."""
    if cfg.rule not in MEMBER_RULES:
        return None
    # band reads the members only at the base's best top_k (its sigma): the rest stay NaN, unread
    scored = len(best.pred) if cfg.rule == "lower_confidence" else min(cfg.top_k, len(best.pred))
    X = np.ascontiguousarray(best.W[:scored, cols])
    member_pred = np.full((len(model.members), len(best.pred)), np.nan)
    member_pred[:, :scored] = [np.asarray(m.predict(X), dtype=float) for m in model.members]
    return member_pred


def _average(
    cfg: SearchConfig,
    sel: Selection,
    best: TopK,
    pool: Pool,
    preds: list[np.ndarray],
    proxies: Optional[np.ndarray],
    threads: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The choice: the mean of the selected mixtures on the grid (band: of every in-band mixture of
    the pool), the rows of `best` it averages, and the rule's info with the count averaged."""
    info = dict(sel.info, candidates=len(best.pred))
    averaged = len(sel.rows)
    mean = best.W[sel.rows].mean(axis=0)
    if cfg.rule == "band":
        # the band spills past the candidates: draw its chunks again (the penalty, if any, on them too)
        if sum(np.count_nonzero(p <= sel.info["threshold"]) for p in preds) > len(sel.rows):
            penalty = (lambda W: cfg.prior_penalty * kl_to_prior(W, pool.gen.prior)) if cfg.prior_penalty else None
            total, averaged = band_sum(pool, preds, sel.info["threshold"], threads, penalty)
            mean = total / averaged
            info["drawn_again"] = True
    rows = sel.rows
    chosen = pool.gen.project(mean)
    if sel.anchor is not None and np.abs(chosen - proxies[sel.anchor]).sum() > sel.radius:
        rows = rows[:1]  # snapping to the grid left the ball: its best mixture, on the grid already
        chosen, averaged = best.W[rows[0]].copy(), 1
        info["snapped_out_of_radius"] = True
    info["averaged"] = averaged
    return chosen, rows, info


def _nominate(
    model: FittedRegressor,
    gen: MixtureGenerator,
    cfg: SearchConfig,
    chosen: np.ndarray,
    cols: list[int],
    proxies: Optional[np.ndarray],
    proxy_ids: Optional[Sequence[str]],
) -> tuple[Optional[dict[str, Any]], Optional[dict[str, Any]], dict[str, np.ndarray]]:
    """What the incumbent and the prior guard say of `chosen` (see the module docstring): (the
    incumbent's record, the choice against the prior, step -> the mixture it proposes)."""
    measured, over_prior, nominees = None, None, {}
    if cfg.incumbent:
        measured, proxy = incumbent(model, proxies, proxy_ids, gen, chosen, cfg.incumbent_margin)
        if proxy is not None:
            nominees[INCUMBENT] = proxy
    if model.out_of_fold is not None:
        gain = float(model.predict(gen.prior[cols][None, :])[0] - model.predict(chosen[cols][None, :])[0])
        over_prior = {**model.beats(gain), "min_confidence": cfg.min_confidence}
        if over_prior["probability"] < cfg.min_confidence:
            nominees[PRIOR_GUARD] = gen.prior.copy()
    return measured, over_prior, nominees


def _check(cfg: SearchConfig, proxies: Optional[np.ndarray]) -> None:
    for key in ("n_simulations", "top_k", "chunk_size", "spread_simulations", "candidates"):
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise UserError(f"search.{key}: {getattr(cfg, key)} must be >= 1")
    if cfg.top_k > cfg.n_simulations:
        raise UserError(f"search.top_k: {cfg.top_k} is more than search.n_simulations ({cfg.n_simulations})")
    if cfg.rule not in RULES:
        raise UserError(f"search.rule: unknown rule {cfg.rule!r}; choose one of {', '.join(RULES)}")
    for key in ("kappa", "band"):
        if getattr(cfg, key) < 0:
            raise UserError(f"search.{key}: {getattr(cfg, key)} must be >= 0")
    if not 0 <= cfg.min_confidence <= 1:
        raise UserError(f"search.min_confidence: {cfg.min_confidence} must be in [0, 1] (0: never keep the prior)")
    if cfg.trust_radius <= 0:
        raise UserError(
            f"search.trust_radius: {cfg.trust_radius} must be > 0 (units of the proxies' median "
            "nearest-neighbour L1 distance)"
        )
    if cfg.rule == "trust_region" and (proxies is None or len(proxies) < 2):
        raise UserError("search.rule=trust_region needs at least 2 trained proxies (results/proxies.csv)")


def regressor_columns(fitted: Sequence[str], domains: Sequence[str]) -> list[int]:
    """Column order taking mixtures over `domains` to the regressor's own domain order."""
    if sorted(fitted) != sorted(domains):
        raise UserError(
            f"data/regression was fitted on domains {', '.join(fitted)} but results/domains.json has "
            f"{', '.join(domains)}: re-run the fit stage (dvc repro fit)"
        )
    return [list(domains).index(d) for d in fitted]
