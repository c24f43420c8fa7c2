"""Search the mixture space with the fitted regressor: simulate, predict, choose one mixture.

RegMix's recipe: draw many mixtures from the same generator as the proxy swarm, predict the
target loss of each, and average the `top_k` best into the chosen mixture (one prediction is
noisy; the average of the best region is robust). That average can land where no proxy was
trained, so the choice is reported with its evidence (`evidence`: L1 distance to the nearest
trained proxies, beside the proxies' own nearest-neighbour spacing, and how much the
bootstrap members disagree there), and `search.rule` offers decision rules that use the
regression's uncertainty:

  lower_confidence  (default) average the `top_k` lowest members' mean + `kappa` x members' std:
                    pessimistic where the bootstrap members disagree (kappa = 0: the bagged mean).
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

The default is measured, not assumed: `python -m benchmarks.bench_choice` replays every rule on
RegMix's released swarm (fit on 64, 128 or 512 training proxies, choose among the 256 test
proxies, whose true losses are known); lower_confidence's regret is lower than top_k's at every
size there (see that module).

Cost: the base model predicts every simulated mixture (the compiled LightGBM: about a second
per 1M). The members are slower (plain LightGBM), so the rules that need their predictions
score only the base model's best `candidates` mixtures of the whole pool (exact, merged over
chunks), and the trust rule measures distances for those alone: a mixture outside the base's
best `candidates` cannot be chosen. `band` averages the whole pool within the band (exactly:
when the band spills past the candidates, the chunks holding in-band mixtures are drawn again
from their seeds). Each bootstrap member also repeats RegMix's top-k choice on the first
`spread_simulations` of the same pool, which gives a spread per chosen weight.

Every random choice comes from `seed` (chunks draw from seeds spawned from it), so the result
does not depend on `threads`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from regmix.config import SearchConfig
from regmix.choose.decision import INCUMBENT, PRIOR_GUARD, RULE, l1, record, step
from regmix.config import SEARCH_RULES
from regmix.errors import UserError
from regmix.choose.sampling import MixtureGenerator, accepted_draws
from regmix.plots import plt, save
from regmix.progress import progress
from regmix.choose.regression import FittedRegressor, Predictor, gain_text, predict_mixtures

RULES = SEARCH_RULES
MEMBER_RULES = ("lower_confidence", "band")  # need bootstrap members
NEAREST = 3  # nearest trained proxies reported beside the choice
L1_BLOCK = 4_000_000  # elements of one (rows x proxies x domains) block of L1 distances


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
class Selection:
    """What a rule picked from a set of candidates: the rows it averages, best first."""

    rows: np.ndarray  # indices into the candidates, in the rule's order
    score: np.ndarray  # the rule's score of those rows (lower is better)
    info: dict[str, Any] = field(default_factory=dict)  # the rule's resolved settings and counts
    anchor: Optional[int] = None  # trust_region: the proxy whose ball holds the average
    radius: Optional[float] = None  # trust_region: the L1 radius, in weight units


@dataclass
class SearchResult:
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
    nominees: dict[str, np.ndarray] = field(default_factory=dict)  # step -> the mixture it proposes in the choice's place


def l1_nearest(A: np.ndarray, B: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """L1 distances from each row of A to its `k` nearest rows of B, nearest first, and their indices."""
    A, B = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
    k = min(k, len(B))
    dist, idx = np.empty((len(A), k)), np.empty((len(A), k), dtype=np.int64)
    step = max(1, L1_BLOCK // max(1, B.size))
    for s in range(0, len(A), step):
        D = np.abs(A[s:s + step, None, :] - B[None, :, :]).sum(axis=2)
        part = np.argpartition(D, k - 1, axis=1)[:, :k] if len(B) > k else np.tile(np.arange(len(B)), (len(D), 1))
        order = np.argsort(np.take_along_axis(D, part, axis=1), axis=1, kind="stable")
        idx[s:s + step] = np.take_along_axis(part, order, axis=1)
        dist[s:s + step] = np.take_along_axis(D, idx[s:s + step], axis=1)
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


def select(cfg: SearchConfig, W: np.ndarray, pred: np.ndarray, member_pred: Optional[np.ndarray] = None,
           proxies: Optional[np.ndarray] = None, prior: Optional[np.ndarray] = None) -> Selection:
    """Apply `cfg.rule` to candidate mixtures W (rows), their base predictions and, where the rule
    needs them, the members' predictions (m, n) or the trained proxies (same columns as W). With
    `cfg.prior_penalty` > 0, every score gains prior_penalty x KL(w || prior) (`prior`: same columns).

    The search calls it on the base model's best `candidates` of the simulated pool (sorted,
    best first; `band` reads the members only at the base's best `top_k`); the benchmark on a
    pool of proxies whose true losses are known.
    """
    pred = np.asarray(pred, dtype=float)
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
            raise UserError(f"search.rule={cfg.rule} needs the regressor's bootstrap members: set "
                            "regression.n_bootstrap >= 2 and re-run the fit stage (dvc repro fit)")
        mean, std = member_pred.mean(axis=0), member_pred.std(axis=0)
    if cfg.rule == "lower_confidence":
        score = mean + cfg.kappa * std + penalty
        rows = np.argsort(score, kind="stable")[:k]
        return Selection(rows, score[rows], {"top_k": cfg.top_k, "kappa": cfg.kappa})
    if cfg.rule == "band":
        sigma = float(np.median(std[by_pred[:k]]))
        threshold = float(pred[by_pred[0]] + cfg.band * sigma)
        rows = by_pred[: int(np.count_nonzero(pred <= threshold))]
        return Selection(rows, pred[rows], {"band": cfg.band, "sigma": sigma, "threshold": threshold})
    if cfg.rule == "trust_region":
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
                f"trained proxy (nearest: {near.min():.4g}); raise search.candidates or search.trust_radius")
        anchor = int(which[eligible[0], 0])
        in_ball = eligible[np.abs(W[eligible] - proxies[anchor]).sum(axis=1) <= radius]
        rows = in_ball[:k]
        info = {"top_k": cfg.top_k, "trust_radius": cfg.trust_radius, "radius_l1": radius,
                "proxy_spacing_median": spacing, "eligible": int(len(eligible)), "in_anchor_ball": int(len(in_ball))}
        return Selection(rows, pred[rows], info, anchor, radius)
    raise UserError(f"search.rule: unknown rule {cfg.rule!r}; choose one of {', '.join(RULES)}")


def incumbent(model: FittedRegressor, proxies: Optional[np.ndarray], proxy_ids: Optional[Sequence[str]],
              gen: MixtureGenerator, chosen: np.ndarray, margin: float = 1.0) -> tuple[dict[str, Any], Optional[np.ndarray]]:
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
    versus = float(model.predict(chosen[_columns(model.domains, gen.domains)][None, :])[0])
    resolution = model.resolution()
    needed = None if resolution is None else margin * resolution
    wins = needed is not None and bool(versus - estimate[best] > needed)
    info = {"proxy": str(model.proxy_ids[known[best]]), "measured": float(y[best]), "out_of_fold": float(p[best]),
            "estimate": float(estimate[best]), "weight_on_measurement": weight, "seed_std": float(model.seed_std),
            "error_std": float(np.sqrt(error)), "proxies": int(eligible.sum()), "versus_predicted": float(versus),
            "margin": margin, "resolution": resolution, "margin_nats": needed, "chosen": wins}
    return info, (proxies[rows[best]].copy() if wins else None)


def search(model: FittedRegressor, gen: MixtureGenerator, cfg: SearchConfig, seed: int,
           threads: int = 1, proxies: Optional[np.ndarray] = None,
           proxy_ids: Optional[Sequence[str]] = None) -> SearchResult:
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
        raise UserError(f"search.rule={cfg.rule} needs the regressor's bootstrap members: set "
                        "regression.n_bootstrap >= 2 and re-run the fit stage (dvc repro fit)")
    cols = _columns(model.domains, gen.domains)
    predictors: list[Predictor] = [model, *model.members]
    n_chunks = -(-cfg.n_simulations // cfg.chunk_size)
    seeds = np.random.SeedSequence(seed).spawn(n_chunks)
    spread_end = cfg.n_simulations if cfg.spread_simulations is None else cfg.spread_simulations
    keep = cfg.top_k if cfg.rule == "top_k" and not cfg.prior_penalty else max(cfg.top_k, cfg.candidates)
    keep_all = cfg.rule == "band"

    def draw(i: int) -> np.ndarray:
        size = min(cfg.chunk_size, cfg.n_simulations - i * cfg.chunk_size)
        return gen.weights(accepted_draws(gen, np.random.default_rng(seeds[i]), size))

    def run_chunk(i: int) -> tuple[list[TopK], Optional[np.ndarray]]:
        W = draw(i)
        X = np.ascontiguousarray(W[:, cols])
        pred = np.asarray(model.predict(X), dtype=float)
        tops = [TopK.of(W, pred, keep)]
        if i * cfg.chunk_size < spread_end:
            tops += [TopK.of(W, np.asarray(m.predict(X), dtype=float), cfg.top_k) for m in predictors[1:]]
        return tops, (pred if keep_all else None)

    tops: list[TopK] | None = None
    preds: list[np.ndarray] = []
    with ThreadPoolExecutor(threads) as pool:
        done = pool.map(run_chunk, range(n_chunks))
        for chunk, pred in progress(done, total=n_chunks, desc="search", unit="chunk", leave=False):
            if pred is not None:
                preds.append(pred)
            if tops is None:
                tops = chunk
            else:  # chunks past `spread_simulations` carry the model's best alone
                tops[0] = tops[0].merge(chunk[0], keep)
                tops[1: len(chunk)] = [t.merge(c, cfg.top_k) for t, c in zip(tops[1:], chunk[1:])]
    assert tops is not None
    best = tops[0]

    member_pred = None
    if cfg.rule in MEMBER_RULES:
        # band reads the members only at the base's best top_k (its sigma): the rest stay NaN, unread
        scored = len(best.pred) if cfg.rule == "lower_confidence" else min(cfg.top_k, len(best.pred))
        X = np.ascontiguousarray(best.W[:scored, cols])
        member_pred = np.full((len(model.members), len(best.pred)), np.nan)
        member_pred[:, :scored] = [np.asarray(m.predict(X), dtype=float) for m in model.members]
    sel = select(cfg, best.W, best.pred, member_pred, proxies, gen.prior)
    info = dict(sel.info, candidates=len(best.pred))
    averaged = len(sel.rows)
    mean = best.W[sel.rows].mean(axis=0)
    if cfg.rule == "band":
        averaged = int(sum(np.count_nonzero(p <= sel.info["threshold"]) for p in preds))
        if averaged > len(sel.rows):  # the band spills past the candidates: draw its chunks again
            mean = _band_sum(draw, preds, sel.info["threshold"], threads) / averaged
            info["drawn_again"] = True
    rows = sel.rows
    chosen = gen.project(mean)
    if sel.anchor is not None and np.abs(chosen - proxies[sel.anchor]).sum() > sel.radius:
        rows = rows[:1]  # snapping to the grid left the ball: its best mixture, on the grid already
        chosen, averaged = best.W[rows[0]].copy(), 1
        info["snapped_out_of_radius"] = True
    info["averaged"] = averaged
    members = np.array([gen.project(t.W.mean(axis=0)) for t in tops[1:]]).reshape(-1, len(gen.domains))
    spread_n = min(cfg.n_simulations, -(-spread_end // cfg.chunk_size) * cfg.chunk_size)
    top = TopK(best.W[rows], best.pred[rows])
    over_prior, measured, nominees = None, None, {}
    if cfg.incumbent:
        measured, proxy = incumbent(model, proxies, proxy_ids, gen, chosen, cfg.incumbent_margin)
        if proxy is not None:
            nominees[INCUMBENT] = proxy
    if model.out_of_fold is not None:
        gain = float(model.predict(gen.prior[cols][None, :])[0] - model.predict(chosen[cols][None, :])[0])
        over_prior = {**model.beats(gain), "min_confidence": cfg.min_confidence}
        if over_prior["probability"] < cfg.min_confidence:
            nominees[PRIOR_GUARD] = gen.prior.copy()
    return SearchResult(gen.domains, chosen, top, members, cfg.n_simulations, spread_n, cfg.rule,
                        averaged, sel.score[: len(rows)], info, gen.usage(chosen), over_prior, measured, nominees)


def _band_sum(draw, preds: list[np.ndarray], threshold: float, threads: int) -> np.ndarray:
    """The sum of every simulated mixture predicted at or under `threshold` (chunks drawn again)."""
    hit = [i for i, p in enumerate(preds) if np.any(p <= threshold)]

    def part(i: int) -> np.ndarray:
        return draw(i)[preds[i] <= threshold].sum(axis=0)

    with ThreadPoolExecutor(threads) as pool:
        return np.sum(list(pool.map(part, hit)), axis=0)


def evidence(result: SearchResult, model: FittedRegressor, proxies: Optional[np.ndarray] = None,
             proxy_ids: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Where the choice stands: L1 distance to the nearest trained proxies beside the proxies' own
    nearest-neighbour spacing, and the members' disagreement there beside that at the proxies."""
    out: dict[str, Any] = {}
    cols = _columns(model.domains, result.domains)
    if proxies is not None and len(proxies):
        ids = list(proxy_ids) if proxy_ids is not None else [str(i) for i in range(len(proxies))]
        dist, idx = l1_nearest(result.chosen[None, :], proxies, NEAREST)
        out["nearest_proxies"] = [{"id": ids[j], "l1": round(float(d), 6)} for d, j in zip(dist[0], idx[0])]
        out["nearest_l1"] = round(float(dist[0, 0]), 6)
        if len(proxies) > 1:
            spacing = proxy_spacing(proxies)
            median = float(np.median(spacing))
            out["proxy_spacing_l1"] = {"median": round(median, 6), "min": round(float(spacing.min()), 6),
                                       "max": round(float(spacing.max()), 6), "n": int(len(proxies))}
            out["nearest_over_spacing"] = round(float(dist[0, 0] / median), 4) if median > 0 else None
    if model.members:
        at = np.array([np.asarray(m.predict(result.chosen[cols][None, :]), dtype=float)[0] for m in model.members])
        out["member_mean"] = float(at.mean())
        out["member_std"] = float(at.std())
        if proxies is not None and len(proxies):
            at_proxies = model.spread(proxies[:, cols])
            # in-sample for most members (each saw ~63% of the proxies): a floor, not a typical value
            out["member_std_at_proxies_median"] = float(np.median(at_proxies))
        out["members"] = len(model.members)
    return out


def summary(result: SearchResult, model: FittedRegressor, baselines: Mapping[str, Mapping[str, float]],
            proxies: Optional[np.ndarray] = None, proxy_ids: Optional[Sequence[str]] = None) -> dict:
    """results/mixture.yaml: the chosen `train:` mixture (RegMix's config shape), the decision so far
    (regmix.choose.decision: the rule, and what the incumbent and the prior guard propose) and the evidence."""
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
    out = {
        "train": {d: round(w, 6) for d, w in chosen.items()},
        # the search's figure for the choice: what verify's fresh seeds test, what `confidence` judges
        "predicted_target": predict_mixtures(model, {"chosen": chosen})["chosen"],
        "top_k_mean_predicted": float(pred.mean()),
        "baselines": {
            name: {"predicted_target": p} for name, p in predict_mixtures(model, baselines).items()
        },
        "rule": {"name": result.rule, **_plain(result.info)},
        "decision": record(decision_steps(result, model)),
        "proposals": {name: {d: round(float(w), 6) for d, w in zip(result.domains, weights)}
                      for name, weights in result.nominees.items()},
        "confidence": confidence(model, chosen, baselines),
        # how often the large run repeats each domain on the choice, beside the cap (sample.max_epochs)
        "usage": result.usage,
        "evidence": evidence(result, model, proxies, proxy_ids),
        "spread": spread,
        "n_simulations": result.n_simulations,
        "top_k": len(pred),
    }
    if result.incumbent is not None:
        out["incumbent"] = dict(result.incumbent)
    return out


def decision_steps(result: SearchResult, model: FittedRegressor) -> list[dict[str, Any]]:
    """The search's part of the decision (regmix.choose.decision): the rule's choice, then what the incumbent
    and the prior guard say of it; neither changes it (verify's fresh seeds decide a proposal)."""
    chosen = dict(zip(result.domains, map(float, result.chosen)))
    predicted = predict_mixtures(model, {"chosen": chosen})["chosen"]
    resolution = model.resolution()
    steps = [step(RULE, f"{result.rule} over {result.n_simulations:,} simulated mixtures, {result.averaged or len(result.top.pred):,} "
                        f"averaged: predicted {predicted:.4f}", predicted=predicted, resolution=resolution)]
    measured = result.incumbent
    if measured is None:
        steps.append(step(INCUMBENT, "off (search.incumbent: false)"))
    elif "skipped" in measured:
        steps.append(step(INCUMBENT, f"not weighed: {measured['skipped']}"))
    else:
        gap = measured["versus_predicted"] - measured["estimate"]
        margin = measured["margin_nats"]
        what = (f"trained proxy {measured['proxy']} estimated {measured['estimate']:.4f} against the choice's "
                f"{measured['versus_predicted']:.4f} predicted: {gap:+.4f} nats in the proxy's favour, against a margin "
                f"of {_nats(margin)} ({measured['margin']:g} x the fit's resolution {_nats(measured['resolution'])})")
        proposed = INCUMBENT in result.nominees
        weights = dict(zip(result.domains, map(float, result.nominees[INCUMBENT]))) if proposed else None
        steps.append(step(INCUMBENT, what + (": proposed, to be confirmed on fresh seeds" if proposed else ": kept the choice"),
                          proposed=INCUMBENT if proposed else None,
                          l1_change=l1(chosen, weights) if proposed else None,
                          predicted_change=-gap if proposed else None, proxy=measured["proxy"]))
    judged = result.over_prior
    if judged is None:
        steps.append(step(PRIOR_GUARD, "not weighed: the fit has no out-of-fold predictions"))
    else:
        proposed = PRIOR_GUARD in result.nominees
        prior = dict(zip(result.domains, map(float, result.nominees[PRIOR_GUARD]))) if proposed else None
        says = f"the choice is {gain_text(judged)}"
        if judged["min_confidence"] == 0:
            says = f"off (search.min_confidence: 0); {says}"
        else:
            says += f", against search.min_confidence={judged['min_confidence']:g}" + (
                ": the prior proposed, to be confirmed on fresh seeds" if proposed else ": kept the choice")
        steps.append(step(PRIOR_GUARD, says,
                          proposed="prior" if proposed else None, l1_change=l1(chosen, prior) if proposed else None,
                          predicted_change=judged["gain"] if proposed else None, probability=judged["probability"]))
    return steps


def _nats(v: Optional[float]) -> str:
    return "unknown" if v is None else f"{v:.4f} nats"


def confidence(model: FittedRegressor, chosen: Mapping[str, float],
               baselines: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Per baseline: how much lower the choice is predicted, and how often a gain that large is real
    among the proxies' out-of-fold pairs ({} without them)."""
    if model.out_of_fold is None:
        return {}
    pred = predict_mixtures(model, {"chosen": chosen, **baselines})
    return {name: model.beats(pred[name] - pred["chosen"]) for name in baselines}


def _plain(info: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers as plain Python types, for YAML."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in info.items()}


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
    ax.set_title(f"the search's proposal ({result.rule}): mean of {result.averaged or len(result.top.pred):,} "
                 f"of {result.n_simulations:,} simulated\n(verify decides what trains: results/answer.yaml)")
    ax.legend()
    save(fig, path, dpi=120)


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
        raise UserError(f"search.trust_radius: {cfg.trust_radius} must be > 0 (units of the proxies' median "
                        "nearest-neighbour L1 distance)")
    if cfg.rule == "trust_region" and (proxies is None or len(proxies) < 2):
        raise UserError("search.rule=trust_region needs at least 2 trained proxies (results/proxies.csv)")


def _columns(fitted: Sequence[str], domains: Sequence[str]) -> list[int]:
    """Column order taking mixtures over `domains` to the regressor's own domain order."""
    if sorted(fitted) != sorted(domains):
        raise UserError(
            f"data/regression was fitted on domains {', '.join(fitted)} but results/domains.json has "
            f"{', '.join(domains)}: re-run the fit stage (dvc repro fit)"
        )
    return [list(domains).index(d) for d in fitted]
