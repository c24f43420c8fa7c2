"""The search's choice and what backs it: results/mixture.yaml, the averaged mixtures and the plot.

`run_search` runs the search (regmix.choose.search) and summarises it, for the `search` stage
and regmix.api alike. The summary holds the chosen `train:` mixture (RegMix's config shape), the
regression's predictions for it and the baselines, the decision so far (regmix.choose.decision:
the rule, and what the incumbent and the prior guard propose), how likely the choice beats each
baseline, and its evidence: the L1 distance to the nearest trained proxies beside the proxies'
own nearest-neighbour spacing, and how much the bootstrap members disagree there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from regmix.choose.decision import INCUMBENT, PRIOR_GUARD, RULE, l1, record, step
from regmix.choose.regression import FittedRegressor, ProxyTable, gain_text, predict_mixtures
from regmix.choose.rules import l1_nearest, proxy_spacing
from regmix.choose.sampling import MixtureGenerator
from regmix.choose.search import SearchResult, regressor_columns, search
from regmix.config import SearchConfig
from regmix.mixtures import baseline_mixtures
from regmix.plots import plt, save
from regmix.tables import mixture_frame

NEAREST = 3  # nearest trained proxies reported beside the choice


@dataclass
class Choice:
    """The search's chosen mixture and what backs it."""

    mixture: dict[str, float]  # domain -> weight over every domain, sums to 1 (results/mixture.yaml's `train`)
    summary: dict[str, Any]  # results/mixture.yaml: predicted_target, baselines' predictions, spread, ...
    result: SearchResult  # the top-k mixtures and predictions, each bootstrap member's choice
    baselines: dict[str, dict[str, float]]  # the mixtures predicted beside it: uniform, prior, human ones


def run_search(
    model: FittedRegressor,
    gen: MixtureGenerator,
    cfg: SearchConfig,
    seed: int,
    threads: int = 1,
    proxies: Optional[ProxyTable] = None,
    human_mixtures: Optional[Mapping[str, Mapping[str, float]]] = None,
) -> Choice:
    """Search (regmix.choose.search) and summarise: the `search` stage's choice. The summary predicts
    the uniform and prior (`gen.prior`) mixtures and any `human_mixtures` beside the choice; `proxies`
    (the trained ones) are where the regression has evidence, and what `trust_region` and the
    incumbent need."""
    baselines = baseline_mixtures(dict(zip(gen.domains, gen.prior)), human_mixtures)
    trained = None if proxies is None else proxies.aligned(gen.domains)  # columns in the generator's order
    ids = None if proxies is None else proxies.ids
    model.compile()  # a LightGBM base predicts through machine code, from this machine's cache
    result = search(model, gen, cfg, seed, threads=threads, proxies=trained, proxy_ids=ids)
    out = summary(result, model, baselines, trained, ids)
    return Choice(out["train"], out, result, baselines)


def top_table(result: SearchResult, top_k: int) -> pd.DataFrame:
    """results/search_topk.csv: the first `top_k` mixtures averaged into the choice, in the rule's
    order, with their base predictions (and lower_confidence's score)."""
    shown = min(top_k, len(result.top.pred))
    top = mixture_frame(range(shown), result.domains, result.top.W[:shown])
    top.insert(1, "predicted_target", result.top.pred[:shown])
    if result.score is not None and result.rule == "lower_confidence":
        top.insert(2, "score", result.score[:shown])
    return top


def choice_text(choice: Choice) -> str:
    """The choice in one line: its rule, its prediction beside the best baseline's, and its evidence."""
    out, result = choice.summary, choice.result
    best = min(out["baselines"].items(), key=lambda kv: kv[1]["predicted_target"])
    ev = out["evidence"]
    where = f"; L1 {ev['nearest_l1']:.3f} to the nearest proxy" if "nearest_l1" in ev else ""
    if "proxy_spacing_l1" in ev:
        where += f" (their median spacing {ev['proxy_spacing_l1']['median']:.3f})"
    if "member_std" in ev:
        where += f", members' std there {ev['member_std']:.4f}"
    return (
        f"chosen mixture ({result.rule}, {result.averaged} averaged, predicted): {out['predicted_target']:.4f} "
        f"(best baseline {best[0]}: {best[1]['predicted_target']:.4f}){where}"
    )


def evidence(
    result: SearchResult,
    model: FittedRegressor,
    proxies: Optional[np.ndarray] = None,
    proxy_ids: Optional[Sequence[str]] = None,
) -> dict[str, Any]:
    """Where the choice stands: L1 distance to the nearest trained proxies beside the proxies' own
    nearest-neighbour spacing, and the members' disagreement there beside that at the proxies."""
    out: dict[str, Any] = {}
    cols = regressor_columns(model.domains, result.domains)
    if proxies is not None and len(proxies):
        ids = list(proxy_ids) if proxy_ids is not None else [str(i) for i in range(len(proxies))]
        dist, idx = l1_nearest(result.chosen[None, :], proxies, NEAREST)
        out["nearest_proxies"] = [{"id": ids[j], "l1": round(float(d), 6)} for d, j in zip(dist[0], idx[0])]
        out["nearest_l1"] = round(float(dist[0, 0]), 6)
        if len(proxies) > 1:
            spacing = proxy_spacing(proxies)
            median = float(np.median(spacing))
            out["proxy_spacing_l1"] = {
                "median": round(median, 6),
                "min": round(float(spacing.min()), 6),
                "max": round(float(spacing.max()), 6),
                "n": int(len(proxies)),
            }
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


def summary(
    result: SearchResult,
    model: FittedRegressor,
    baselines: Mapping[str, Mapping[str, float]],
    proxies: Optional[np.ndarray] = None,
    proxy_ids: Optional[Sequence[str]] = None,
) -> dict:
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
        "baselines": {name: {"predicted_target": p} for name, p in predict_mixtures(model, baselines).items()},
        "rule": {"name": result.rule, **_plain(result.info)},
        "decision": record(decision_steps(result, model)),
        "proposals": {
            name: {d: round(float(w), 6) for d, w in zip(result.domains, weights)}
            for name, weights in result.nominees.items()
        },
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
    averaged = result.averaged or len(result.top.pred)
    rule = step(
        RULE,
        f"{result.rule} over {result.n_simulations:,} simulated mixtures, {averaged:,} averaged: "
        f"predicted {predicted:.4f}",
        predicted=predicted,
        resolution=model.resolution(),
    )
    return [rule, _incumbent_step(result, chosen), _prior_guard_step(result, chosen)]


def _incumbent_step(result: SearchResult, chosen: Mapping[str, float]) -> dict[str, Any]:
    """What the incumbent says of the choice (`search.incumbent`)."""
    measured = result.incumbent
    if measured is None:
        return step(INCUMBENT, "off (search.incumbent: false)")
    if "skipped" in measured:
        return step(INCUMBENT, f"not weighed: {measured['skipped']}")
    gap = measured["versus_predicted"] - measured["estimate"]
    what = (
        f"trained proxy {measured['proxy']} estimated {measured['estimate']:.4f} against the choice's "
        f"{measured['versus_predicted']:.4f} predicted: {gap:+.4f} nats in the proxy's favour, against a margin "
        f"of {_nats(measured['margin_nats'])} ({measured['margin']:g} x the fit's resolution "
        f"{_nats(measured['resolution'])})"
    )
    proposed = INCUMBENT in result.nominees
    weights = dict(zip(result.domains, map(float, result.nominees[INCUMBENT]))) if proposed else None
    return step(
        INCUMBENT,
        what + (": proposed, to be confirmed on fresh seeds" if proposed else ": kept the choice"),
        proposed=INCUMBENT if proposed else None,
        l1_change=l1(chosen, weights) if proposed else None,
        predicted_change=-gap if proposed else None,
        proxy=measured["proxy"],
    )


def _prior_guard_step(result: SearchResult, chosen: Mapping[str, float]) -> dict[str, Any]:
    """What the prior guard says of the choice (`search.min_confidence`)."""
    judged = result.over_prior
    if judged is None:
        return step(PRIOR_GUARD, "not weighed: the fit has no out-of-fold predictions")
    proposed = PRIOR_GUARD in result.nominees
    prior = dict(zip(result.domains, map(float, result.nominees[PRIOR_GUARD]))) if proposed else None
    says = f"the choice is {gain_text(judged)}"
    if judged["min_confidence"] == 0:
        says = f"off (search.min_confidence: 0); {says}"
    else:
        says += f", against search.min_confidence={judged['min_confidence']:g}" + (
            ": the prior proposed, to be confirmed on fresh seeds" if proposed else ": kept the choice"
        )
    return step(
        PRIOR_GUARD,
        says,
        proposed="prior" if proposed else None,
        l1_change=l1(chosen, prior) if proposed else None,
        predicted_change=judged["gain"] if proposed else None,
        probability=judged["probability"],
    )


def _nats(v: Optional[float]) -> str:
    return "unknown" if v is None else f"{v:.4f} nats"


def confidence(
    model: FittedRegressor, chosen: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]]
) -> dict[str, Any]:
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
    ax.set_title(
        f"the search's proposal ({result.rule}): mean of {result.averaged or len(result.top.pred):,} "
        f"of {result.n_simulations:,} simulated\n(verify decides what trains: results/answer.yaml)"
    )
    ax.legend()
    save(fig, path, dpi=120)
