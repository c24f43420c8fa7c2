"""Which steps of the decision earn their place? A replay on RegMix's released swarm, on targets with interior optima.

The measurement behind the defaults of regmix.choose.decision's steps (`search.prior_penalty`,
`search.incumbent`, `search.incumbent_margin`, `verify.choose`'s test). The corpus is the
Pile (RegMix's 512 training and 256 test 1M-parameter proxies), the released losses are taken
as true, and the targets are those whose best test proxy is interior (no weight above 0.7, at
least three domains at 0.05 or more): the released validation losses where that holds, their
`mean`, and random weighted means. On a corner target "train on that domain" wins without any
regression, so a step measured there says nothing about the trade-offs the method is for.

Each run draws `size` training proxies as the swarm, measures them with seed noise N(0, s^2)
(plus 8 replicate pairs, from which the seed noise is estimated as the pipeline does), fits the
`regression` section of params.yaml with its CV and bootstrap members, and then every arm
decides among the 256 test proxies (k = 1, as in bench_choice) and the swarm:

  rule             `search.rule` alone (the regression's own choice)
  rule_kl<l>       the rule with prior_penalty l: score + l x KL(mixture || prior)
  incumbent_m<m>   the old search-time override: the best-estimated proxy replaces the rule's pick when
                   estimated lower by more than m x the fit's resolution (m = 0: any gap)
  best_proxy       the lowest measured swarm proxy (no regression)
  verified_lowest  fresh seeds (`--fresh`, same noise) for the rule's pick, best_proxy and the incumbent's
                   proposal at margin 1: the lowest mean wins
  verified_welch   the same seeds: another replaces the rule's pick only when distinguishably lower
                   (regmix.choose.verify.judge: Welch, Holm), the pipeline's verified pick

Regret = the final choice's true loss minus the best true loss among the test proxies and the
swarm (nats). Per noise level, over targets and seeds: each arm's mean regret with its standard
error, and its paired difference to `rule`. The prior guard is not replayed: the prior is not
among the released proxies, so its true loss is unknown (bench_decision_large replays it on the
recorded large runs). The last line is one JSON object (with
`--out`, also written there).

    .venv/bin/python -m benchmarks.bench_decision [--noise 0.03,0.1] [--seeds 3] [--size 64]
                                                   [--random 4] [--out benchmarks/results/decision.json]
    # about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_choice: LightGBM's threads spin otherwise

import numpy as np

from benchmarks import add_released_argument, fit_with_cv, pool_replay
from benchmarks.bench_choice import stats
from benchmarks.bench_confidence import targets
from regmix.choose.rules import select
from regmix.choose.sampling import pile_generator
from regmix.choose.search import incumbent
from regmix.choose.verify import judge
from regmix.config import SampleConfig, from_dict
from regmix.files import load_params, write_json
from regmix.statistics import pooled_noise

REPLICATES = 8  # replicate pairs the seed noise is estimated from, as in the demo's swarm
PENALTIES = (0.01, 0.03, 0.1)  # prior_penalty values replayed beside the rule alone
MARGINS = (0.0, 1.0)  # incumbent margins, in units of the fit's resolution


def interior(weights: np.ndarray, top: float = 0.7, floor: float = 0.05, spread: int = 3) -> bool:
    """A mixture away from the simplex's corners: no weight above `top`, `spread` weights >= `floor`."""
    return bool(weights.max() <= top and np.sum(weights >= floor) >= spread)


def run_once(W, y, domains, target, pool, truth, noise, reg, rule, gen, seed, fresh) -> dict[str, float]:
    """One noisy swarm, one fit, every arm's regret."""
    rng = np.random.default_rng([seed, 11])
    measured = y + noise * rng.normal(size=len(y))
    again = y[:REPLICATES] + noise * rng.normal(size=REPLICATES)
    fitted = fit_with_cv(W, measured, domains, target, reg, seed)
    ids = [str(i) for i in range(len(y))]
    fitted.proxy_ids = ids
    fitted.seed_std = pooled_noise({i: [a, b] for i, a, b in zip(ids, measured, again)}).std
    pred = fitted.predict(pool)
    members = np.array([m.predict(pool) for m in fitted.members])
    to_gen = [domains.index(d) for d in gen.domains]
    prior = gen.prior[[gen.domains.index(d) for d in domains]]
    best = min(truth.min(), y.min())
    pick = int(select(rule, pool, pred, members, W).rows[0])
    out = {"rule": float(truth[pick] - best)}
    for lam in PENALTIES:
        kl = int(select(dataclasses.replace(rule, prior_penalty=lam), pool, pred, members, W, prior).rows[0])
        out[f"rule_kl{lam:g}"] = float(truth[kl] - best)
    proposal = None
    for margin in MARGINS:
        info, proxy = incumbent(fitted, W[:, to_gen], ids, gen, pool[pick][to_gen], margin)
        out[f"incumbent_m{margin:g}"] = float((y[int(info["proxy"])] if proxy is not None else truth[pick]) - best)
        out[f"incumbent_m{margin:g}_fired"] = float(proxy is not None)
        if proxy is not None and margin == 1.0:
            proposal = int(info["proxy"])
    bp = int(np.argmin(measured))
    out["best_proxy"] = float(y[bp] - best)
    true = {"regmix": truth[pick], "best_proxy": y[bp]}
    if proposal is not None and proposal != bp:
        true["incumbent"] = y[proposal]
    seeds = {name: list(t + noise * rng.normal(size=fresh)) for name, t in true.items()}
    choice = judge(seeds, {}, {})["choice"]
    out["verified_lowest"] = float(true[choice["lowest"]] - best)
    out["verified_welch"] = float(true[choice["mixture"]] - best)
    out["verified_welch_replaced"] = float(choice["mixture"] != "regmix")
    out["verified_lowest_replaced"] = float(choice["lowest"] != "regmix")
    return out


def arms() -> list[str]:
    return [
        "rule",
        *(f"rule_kl{lam:g}" for lam in PENALTIES),
        *(f"incumbent_m{m:g}" for m in MARGINS),
        "best_proxy",
        "verified_lowest",
        "verified_welch",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_released_argument(parser)
    parser.add_argument("--noise", default="0.03,0.1", help="seed noise levels s (nats), comma-separated")
    parser.add_argument("--size", type=int, default=64, help="training proxies per run (a random subset)")
    parser.add_argument("--seeds", type=int, default=3, help="random subsets per noise level and target")
    parser.add_argument("--fresh", type=int, default=3, help="fresh seeds per verified mixture")
    parser.add_argument("--random", type=int, default=4, help="random weighted means of the released losses")
    parser.add_argument("--targets", default="all", help="candidate targets (only interior ones are replayed)")
    parser.add_argument("--out", default=None, help="also write the JSON record here")
    args = parser.parse_args()

    params = load_params()
    train, test, pool, reg, rule = pool_replay(args.released, params)
    domains = train.domains
    gen = pile_generator(dataclasses.replace(from_dict(SampleConfig, params["sample"], "sample."), max_epochs=1.5))
    gen = dataclasses.replace(gen, caps=np.full(len(gen.domains), gen.units))  # released rows sit off the grid
    chosen = {
        name: t
        for name, t in targets(args.targets, list(test.losses.columns), args.random).items()
        if interior(pool[int(np.argmin(test.target_values(t)))])
    }
    print(f"targets with interior optima: {', '.join(chosen)}", flush=True)

    rows = []
    for noise in (float(s) for s in args.noise.split(",")):
        runs = []
        for name, target in chosen.items():
            y_all, truth = train.target_values(target), test.target_values(target)
            for seed in range(args.seeds):
                pick = np.sort(np.random.default_rng([args.size, seed]).choice(len(y_all), args.size, replace=False))
                runs.append(
                    run_once(
                        train.weights[pick],
                        y_all[pick],
                        domains,
                        target,
                        pool,
                        truth,
                        noise,
                        reg,
                        rule,
                        gen,
                        seed,
                        args.fresh,
                    )
                )
        row = {"noise": noise, "runs": len(runs)}
        for arm in arms():
            values = np.array([r[arm] for r in runs])
            paired = values - np.array([r["rule"] for r in runs])
            row[arm] = {
                "regret": round(stats(values)[0], 5),
                "se": round(stats(values)[1], 5),
                "minus_rule": round(stats(paired)[0], 5),
                "minus_rule_se": round(stats(paired)[1], 5),
            }
        for flag in ("incumbent_m0_fired", "incumbent_m1_fired", "verified_welch_replaced", "verified_lowest_replaced"):
            row[flag] = int(sum(r[flag] for r in runs))
        rows.append(row)
        print(f"noise {noise:g}, {len(runs)} runs:", flush=True)
        for arm in arms():
            a = row[arm]
            print(
                f"  {arm:18s} regret {a['regret']:.4f} ± {a['se']:.4f}  minus rule {a['minus_rule']:+.4f} ± "
                f"{a['minus_rule_se']:.4f}",
                flush=True,
            )
        print(
            "  fired/replaced: "
            + ", ".join(
                f"{f} {row[f]}"
                for f in (
                    "incumbent_m0_fired",
                    "incumbent_m1_fired",
                    "verified_lowest_replaced",
                    "verified_welch_replaced",
                )
            ),
            flush=True,
        )
    record = {
        "bench": "decision",
        "size": args.size,
        "seeds": args.seeds,
        "fresh": args.fresh,
        "targets": list(chosen),
        "rule": rule.rule,
        "rows": rows,
    }
    if args.out:
        write_json(args.out, record)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
