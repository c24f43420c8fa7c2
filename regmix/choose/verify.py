"""The compared mixtures measured again at the proxy scale, before any large run.

Two numbers the search reports flatter their mixture. The chosen mixture's predicted loss is
the lowest of a million predictions, so its errors were selected for (the winner's curse);
`best_proxy`'s swarm loss is the lowest of the swarm's noisy measurements. Training each
mixture's proxy again with fresh seeds (`verify.seeds`, seeds the swarm never used) measures
both without the selection, for a few proxies' time against the large runs' hours. Each mixture
gets its mean with a 95% interval on its own seed noise and Welch's test against `regmix`, Holm-adjusted
over the check's comparisons (regmix.statistics; a mixture with one seed borrows the noise pooled over
these seeds and the swarm's replicate pairs); the gain over `prior` is
given measured beside predicted, so the search's optimism is in the outputs.

Then the check takes the decision's last step (regmix.choose.decision, `verify.choose`): a verified
mixture (a step's proposal, `best_proxy`, `prior`, `uniform`) replaces the search's choice as
`regmix` only when its fresh seeds measured it distinguishably lower (Welch's test, Holm-adjusted,
at 5%). The lowest mean alone is not enough: with three seeds a mixture measures lowest by luck
often, and the choice is the regression's answer unless the evidence says otherwise (a lower mean
that is not distinguishable is a warning). At a scale nearer the large run's (`verify.model`,
`verify.optim`) the seeds also see what the proxies' scale cannot, such as a broad mixture
overtaking a concentrated one as the model learns more.

The record in words (the verdict's line, the doubts) is regmix.choose.verify_text's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from regmix.choose.decision import INCUMBENT, PRIOR_GUARD, VERIFIED_PICK, answer, l1, record, step
from regmix.choose.mixture_files import BEST_PROXY, CHOSEN
from regmix.choose.noise import target_pairs
from regmix.choose.regression import FittedRegressor, predict_mixtures, proxy_table
from regmix.files import no_nan
from regmix.statistics import Comparison, compare, holm, interval, pooled_noise, spread
from regmix.target import Target

VERIFY_SEED_OFFSET = 2  # seed + 2, seed + 3, ...: the swarm trains with seed, its replicates with seed + 1
PRIOR = "prior"


def verify_seeds(n: int, base: int) -> list[int]:
    """The `n` seeds of the check, none of them a seed the swarm or its replicates trained with."""
    return [base + VERIFY_SEED_OFFSET + i for i in range(n)]


def measured_targets(table: pd.DataFrame) -> dict[str, list[float]]:
    """{mixture: its target loss per seed} of a `regmix.train.swarm.run_seeds` table."""
    return {str(name): group["target"].astype(float).tolist() for name, group in table.groupby("mixture", sort=False)}


@dataclass
class Verified:
    """What the check gives: the fresh seeds' table, its record, the mixtures the large runs train
    and the answer."""

    table: pd.DataFrame  # one row per (mixture, seed): the target loss, the weights and the scores
    record: dict[str, Any]  # results/verify.json: each mixture judged against `regmix`, and the decision
    compared: dict[str, dict[str, float]]  # the compared mixtures the large runs train, `regmix` the one chosen
    answer: dict[str, Any] | None  # results/answer.yaml (None without the search's mixture file)


def run_verify(
    compared: Mapping[str, Mapping[str, float]],
    names: Sequence[str],
    train: Callable[[dict[str, dict[str, float]]], pd.DataFrame],
    target: Target,
    regressor: FittedRegressor | None = None,
    choice: Mapping[str, Any] | None = None,
    proxies: pd.DataFrame | None = None,
    replicates: pd.DataFrame | None = None,
    scale: Mapping[str, Any] | None = None,
    choose: bool = True,
) -> Verified:
    """The `verify` stage's check: the `names` among the `compared` mixtures measured again (with the
    mixtures the search's steps proposed, when `regmix` is among them), judged (`judge`), the
    decision's last step taken (`verified_step`) and the mixture the large runs train as `regmix`.

    `train` trains a {name: mixture} dict's proxies on the fresh seeds and returns their table
    (regmix.train.swarm.run_seeds). `choice`: the search's mixture file (results/mixture.yaml), its
    decision steps and proposals. `regressor` predicts every measured mixture. At the proxies' own
    scale (`scale` empty: the changes the seeds trained with) the swarm's tables add `best_proxy`'s
    swarm loss (`proxies`) and the seed-noise pairs (with `replicates`).
    """
    mixtures = {name: dict(compared[name]) for name in names}
    if choice is not None and CHOSEN in mixtures:  # a step's proposal is measured beside the choice
        mixtures.update(proposed_mixtures(choice, mixtures))
    table = train(mixtures)
    swarm_loss, pairs = {}, {}
    if not scale and proxies is not None:  # the swarm's loss and seed noise are measures of the proxies' own scale
        swarm = proxy_table(proxies, "the swarm's proxies")
        swarm_loss = {BEST_PROXY: float(swarm.target_values(target).min())}  # what chose it
        if replicates is not None:
            pairs = target_pairs(proxies, replicates, target)
    predicted = {} if regressor is None else predict_mixtures(regressor, mixtures)
    result = judge(measured_targets(table), pairs, predicted, swarm_loss, scale, choose)
    steps = [*(choice or {}).get("decision", {}).get("steps", []), verified_step(result, mixtures, predicted, choose)]
    result["decision"] = record(steps)
    final = trained(compared, result, mixtures)
    to_use = None if choice is None else answer(final.get(CHOSEN), choice, result["decision"])
    return Verified(table, result, final, to_use)


def judge(
    measured: Mapping[str, Sequence[float]],
    replicates: Mapping[str, Sequence[float]],
    predicted: Mapping[str, float],
    swarm: Mapping[str, float] | None = None,
    scale: Mapping[str, Any] | None = None,
    choose: bool = True,
) -> dict[str, Any]:
    """results/verify.json from each mixture's target loss per fresh seed (`measured`), the swarm's
    (proxy, replicate) target pairs (`replicates`: {id: [loss, loss again]}), the regression's
    predictions and, for swarm members, the loss the swarm measured (`swarm`). `scale`: the
    changes to the proxy config the seeds trained with (`verify.model`, `verify.optim`; empty:
    the proxies' own). `choice`: the mixture the large runs train as `regmix` (`final_choice`)."""
    swarm = swarm or {}
    noise = pooled_noise(
        {**{f"mixture {n}": v for n, v in measured.items()}, **{f"replicate {i}": v for i, v in replicates.items()}}
    )
    seeds = {len(v) for v in measured.values()}
    out: dict[str, Any] = {
        "seeds": max(seeds, default=0),
        "scale": dict(scale or {}),
        "seed_noise": {"std": noise.std, "df": noise.df, "replicate_pairs": len(replicates)},
        "mixtures": {},
    }
    reference = measured.get(CHOSEN)
    tested = holm(
        {
            name: compare(losses, reference, noise)
            for name, losses in measured.items()
            if reference is not None and name != CHOSEN
        }
    )
    for name, losses in measured.items():
        mean, low, high = interval(losses, noise)
        entry: dict[str, Any] = {
            "measured": mean,
            "ci95": [low, high],
            "seeds": len(losses),
            "seed_std": spread(losses, noise).std,
            "predicted": predicted.get(name),
        }
        if name in swarm:
            entry["swarm"] = swarm[name]
        if name in tested:
            entry["vs_regmix"] = tested[name].as_dict()
        out["mixtures"][name] = entry
    if PRIOR in tested and {CHOSEN, PRIOR} <= set(predicted):
        out["over_prior"] = gain_over_prior(tested[PRIOR], predicted[PRIOR] - predicted[CHOSEN])
    out["choice"] = final_choice(out["mixtures"], choose)
    return no_nan(out)


PROPOSED_AS = {INCUMBENT: INCUMBENT, PRIOR_GUARD: PRIOR}  # a step's proposal, verified under this name


def proposed_mixtures(
    choice: Mapping[str, Any], verified: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    """The mixtures the search's steps proposed in the choice's place (results/mixture.yaml's
    `proposals`), by the name verify measures them under, less those already among `verified`
    (under that name, or with the same weights: the incumbent's proxy is often `best_proxy`)."""
    out = {}
    for step_name, weights in choice.get("proposals", {}).items():
        name = PROPOSED_AS[step_name]
        if name in verified or any(l1(weights, w) <= 1e-6 for w in verified.values()):
            continue
        out[name] = dict(weights)
    return out


def final_choice(entries: Mapping[str, Mapping[str, Any]], choose: bool) -> dict[str, Any]:
    """Which verified mixture the large runs train as `regmix`: the search's choice, unless `choose`
    and another measured distinguishably lower on the fresh seeds (`vs_regmix` verdict `better`,
    Holm-adjusted), the lowest of those. `by`: `measured` (replaced) or `search`; `lowest`: the
    mixture with the lowest mean, replaced or not."""
    if CHOSEN not in entries:
        return {"mixture": CHOSEN, "by": "search"}
    lowest = min(entries, key=lambda n: (entries[n]["measured"], n != CHOSEN))
    better = [n for n, e in entries.items() if e.get("vs_regmix", {}).get("verdict") == "better"]
    if not choose or not better:
        return {"mixture": CHOSEN, "by": "search", "lowest": lowest}
    return {"mixture": min(better, key=lambda n: entries[n]["measured"]), "by": "measured", "lowest": lowest}


def replaced(result: Mapping[str, Any]) -> str | None:
    """The verified mixture whose weights replace the search's choice as `regmix`, or None."""
    name = result.get("choice", {}).get("mixture", CHOSEN)
    return None if name == CHOSEN else name


def trained(
    compared: Mapping[str, Mapping[str, float]],
    result: Mapping[str, Any],
    verified: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, dict[str, float]]:
    """The compared mixtures the large runs train: the search's (`compared`), with `regmix` the
    weights of the mixture the check chose (`result["choice"]`; among `verified` when it is a step's
    proposal rather than a compared mixture)."""
    out = {name: dict(weights) for name, weights in compared.items()}
    other = replaced(result)
    if other:
        out[CHOSEN] = dict({**(verified or {}), **compared}[other])
    return out


def verified_step(
    result: Mapping[str, Any], mixtures: Mapping[str, Mapping[str, float]], predicted: Mapping[str, float], choose: bool
) -> dict[str, Any]:
    """The decision's last step (regmix.choose.decision) from the check's `result` (judge's output)."""
    entries, choice = result.get("mixtures", {}), result.get("choice", {})
    if CHOSEN not in entries:
        return step(
            VERIFIED_PICK,
            "off: the search's choice was not measured again (verify.seeds: 0 or `regmix` not among verify.mixtures)",
        )
    other, lowest = replaced(result), choice.get("lowest", CHOSEN)
    if other:
        vs = entries[other]["vs_regmix"]
        return step(
            VERIFIED_PICK,
            f"`{other}` measured {vs['difference']:+.4f} nats against the choice on fresh seeds "
            f"(Holm-adjusted p {vs['p_holm']:.3g}): it replaces the choice",
            changed=True,
            l1_change=l1(mixtures[CHOSEN], mixtures[other]),
            predicted_change=_minus(predicted.get(other), predicted.get(CHOSEN)),
            mixture=other,
        )
    if lowest == CHOSEN:
        return step(VERIFIED_PICK, "the choice measured the lowest on fresh seeds: kept", mixture=CHOSEN)
    vs = entries[lowest].get("vs_regmix", {})
    why = (
        "verify.choose: false"
        if not choose
        else f"not distinguishable, Holm-adjusted p {vs.get('p_holm', math.nan):.3g}"
    )
    return step(
        VERIFIED_PICK,
        f"`{lowest}` measured {vs.get('difference', math.nan):+.4f} nats against the choice on "
        f"fresh seeds ({why}): kept the choice",
        mixture=CHOSEN,
    )


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def gain_over_prior(c: Comparison, predicted_gain: float) -> dict[str, Any]:
    """How far below `prior` the choice measured (positive: lower loss), beside the predicted gain:
    `c` is prior's Holm-adjusted comparison with the choice. `optimism` is predicted minus measured,
    what the search's selection added. `verdict`: real, prior better, not distinguishable, unknown
    or same runs."""
    verdict = {"worse": "real", "better": "prior better"}.get(c.verdict, c.verdict)
    return {
        "predicted": predicted_gain,
        "measured": c.difference,
        "ci95": [c.low, c.high],
        "p_value": c.p_value,
        "p_holm": c.p_adjusted,
        "verdict": verdict,
        "optimism": predicted_gain - c.difference,
    }
