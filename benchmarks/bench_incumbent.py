"""Does `search.incumbent` help on another corpus and other targets? A replay on RegMix's released swarm.

`benchmarks.bench_targets` measures the incumbent on the committed run's own corpus with fresh
seeds. Here the corpus is the Pile (RegMix's 512 training and 256 test 1M-parameter proxies)
and the targets are ones nothing was tuned on. The released losses are taken as each proxy's
true loss; a run draws `size` random training proxies as the swarm and measures them with seed
noise added (N(0, s^2), s from `--noise`), plus 8 replicate pairs from which the seed noise is
estimated, as the pipeline estimates it. It fits the `regression` section of params.yaml on the
noisy swarm (with its CV and bootstrap members), lets `search.rule` pick one of the 256 test
proxies (k = 1, as in bench_choice), then weighs the incumbent among the swarm with
`regmix.search.incumbent`, the search's own code.

Regret = the final choice's true loss minus the best true loss among the test proxies and the
swarm (nats). Reported per noise level, over targets and seeds: the rule alone, the rule with
the incumbent, the best measured proxy alone (naive), and the paired difference incumbent minus
rule with its standard error. The last line is one JSON object with every row.

    .venv/bin/python -m benchmarks.bench_incumbent [--noise 0.03,0.1] [--seeds 5] [--size 64]
                                                   [--targets pile_cc,github,arxiv,mean] [--random 2]
    # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_choice: LightGBM's threads spin otherwise

import numpy as np

from benchmarks import add_released_argument, add_target_arguments, fit_with_cv, pool_replay
from benchmarks.bench_choice import stats
from benchmarks.bench_confidence import targets
from regmix.config import RegressionConfig, SampleConfig, SearchConfig, from_dict
from regmix.files import load_params
from regmix.sampling import pile_generator
from regmix.search import incumbent, select
from regmix.target import Target
from regmix.verdict import pooled_noise

REPLICATES = 8  # replicate pairs the seed noise is estimated from, as in the demo's swarm
ARMS = ("rule", "incumbent", "best_measured")


def run_once(W: np.ndarray, y: np.ndarray, domains: list[str], target: Target, pool: np.ndarray, truth: np.ndarray,
             noise: float, reg: RegressionConfig, rule: SearchConfig, gen, seed: int) -> dict[str, float]:
    """One noisy swarm, one fit, the rule's pick and the incumbent's verdict: each arm's regret."""
    rng = np.random.default_rng([seed, 7])
    measured = y + noise * rng.normal(size=len(y))
    again = y[:REPLICATES] + noise * rng.normal(size=REPLICATES)
    fitted = fit_with_cv(W, measured, domains, target, reg, seed)
    ids = [str(i) for i in range(len(y))]
    fitted.proxy_ids = ids
    fitted.seed_std = pooled_noise({i: [a, b] for i, a, b in zip(ids, measured, again)}).std
    members = np.array([m.predict(pool) for m in fitted.members])
    pick = int(select(rule, pool, fitted.predict(pool), members, W).rows[0])
    to_gen = [domains.index(d) for d in gen.domains]
    info, proxy = incumbent(fitted, W[:, to_gen], ids, gen, pool[pick][to_gen])
    best = min(truth.min(), y.min())
    final = y[int(info["proxy"])] if proxy is not None else truth[pick]
    return {"rule": float(truth[pick] - best), "incumbent": float(final - best),
            "best_measured": float(y[int(np.argmin(measured))] - best), "chosen": float(proxy is not None),
            "seed_std": float(fitted.seed_std)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_released_argument(parser)
    parser.add_argument("--noise", default="0.03,0.1", help="seed noise levels s (nats), comma-separated")
    parser.add_argument("--size", type=int, default=64, help="training proxies per run (a random subset)")
    parser.add_argument("--seeds", type=int, default=5, help="random subsets per noise level and target")
    add_target_arguments(parser, "pile_cc,github,arxiv,mean", 2)
    args = parser.parse_args()

    params = load_params()
    train, test, pool, reg, rule = pool_replay(args.released, params)
    domains = train.domains
    # RegMix's swarm: its prior and caps (1.5 epochs of its 25B-token large run: 15x the share)
    gen = pile_generator(dataclasses.replace(from_dict(SampleConfig, params["sample"], "sample."), max_epochs=1.5))
    gen = dataclasses.replace(gen, caps=np.full(len(gen.domains), gen.units))  # released rows sit off the grid

    rows = []
    for noise in (float(s) for s in args.noise.split(",")):
        runs = []
        for name, target in targets(args.targets, list(test.losses.columns), args.random).items():
            y_all, truth = train.target_values(target), test.target_values(target)
            for seed in range(args.seeds):
                pick = np.sort(np.random.default_rng([args.size, seed]).choice(len(y_all), args.size, replace=False))
                runs.append(run_once(train.weights[pick], y_all[pick], domains, target, pool, truth, noise, reg, rule,
                                     gen, seed))
        row = {"noise": noise, "runs": len(runs), "incumbent_chosen": int(sum(r["chosen"] for r in runs)),
               "seed_std_estimated": round(float(np.mean([r["seed_std"] for r in runs])), 4)}
        for arm in ARMS:
            row[arm] = dict(zip(("regret", "se"), map(lambda v: round(v, 5), stats(np.array([r[arm] for r in runs])))))
        diff = np.array([r["incumbent"] - r["rule"] for r in runs])
        row["incumbent_minus_rule"] = dict(zip(("mean", "se"), map(lambda v: round(v, 5), stats(diff))))
        row["incumbent_worse_runs"] = int(np.sum(diff > 0))
        row["incumbent_better_runs"] = int(np.sum(diff < 0))
        rows.append(row)
        print(f"noise {noise:g} (estimated {row['seed_std_estimated']:.3f}), {len(runs)} runs: regret rule "
              f"{row['rule']['regret']:.4f} ± {row['rule']['se']:.4f}, with the incumbent "
              f"{row['incumbent']['regret']:.4f} ± {row['incumbent']['se']:.4f} (chosen in {row['incumbent_chosen']}; "
              f"paired {row['incumbent_minus_rule']['mean']:+.4f} ± {row['incumbent_minus_rule']['se']:.4f}, better in "
              f"{row['incumbent_better_runs']}, worse in {row['incumbent_worse_runs']}), best measured proxy alone "
              f"{row['best_measured']['regret']:.4f} ± {row['best_measured']['se']:.4f}", flush=True)
    print(json.dumps({"size": args.size, "seeds": args.seeds, "rows": rows}))


if __name__ == "__main__":
    main()
