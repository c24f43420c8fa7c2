"""Replay active rounds on RegMix's released swarm, where every proxy's true loss is known.

The measurement behind `active`. RegMix released 512 training proxies and 256 test proxies (1M
parameters, 1B tokens each, Pile domains; target pile_cc). The 512 training proxies are the pool
and their measured losses the oracle: each seed starts from the same `--start` random proxies and
grows to `--start + rounds x batch` two ways, by the same counts:

  random   the next proxies drawn at random from the pool (a bigger one-shot swarm)
  active   each round, `regmix.choose.active.propose` (the pipeline's own code, params.yaml's `active`
           section: its rule, kappa, spacing and acquisition model) picks the batch among the
           pool proxies not trained yet; every rule of `active.rule` is replayed

At every count the `regression` section of params.yaml (its base model: RegMix's LightGBM unless
changed) is fitted on the proxies so far and scored on the 256 test proxies: the Spearman of its
predictions with their true losses, and the regret of its choice, the true loss of the test proxy
it ranks first minus the best true test loss (nats; lower is better). Over seeds: means, standard
errors, and active - random paired by seed. The last line is one JSON object; its `proxies`,
`random` and `active` (params.yaml's rule) are at the final count, means over seeds.

    .venv/bin/python -m benchmarks.bench_active [--seeds 10] [--start 64] [--batch 32] [--rounds 4]
                                                [--target pile_cc]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

# LightGBM's OpenMP threads spin while waiting (see bench_choice); set before LightGBM loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from scipy.stats import spearmanr

from benchmarks import add_released_argument, released_swarm
from benchmarks.bench_choice import TARGET, stats
from regmix.checks import check_active
from regmix.choose.active import fit_acquisition, propose
from regmix.choose.regression import fit_regressor
from regmix.config import ACQUISITION_RULES, ActiveConfig, RegressionConfig, from_dict
from regmix.files import load_params
from regmix.target import Target


def score(
    rows: np.ndarray,
    W: np.ndarray,
    y: np.ndarray,
    domains: list[str],
    pool: np.ndarray,
    truth: np.ndarray,
    reg: RegressionConfig,
    target: Target,
    seed: int,
) -> dict[str, float]:
    """Fit on the training proxies `rows`; Spearman on the test pool and the regret of its first-ranked proxy."""
    pred = fit_regressor(W[rows], y[rows], domains, target, reg, seed).predict(pool)
    return {"spearman": float(spearmanr(pred, truth)[0]), "regret": float(truth[int(np.argmin(pred))] - truth.min())}


def grow(
    start: np.ndarray,
    W: np.ndarray,
    y: np.ndarray,
    domains: list[str],
    target: Target,
    cfg: ActiveConfig,
    rounds: int,
    seed: int,
) -> list[np.ndarray]:
    """The training proxies after each active round (the start first): each round proposes among the rest."""
    rows, out = start, [start]
    for r in range(1, rounds + 1):
        fitted = fit_acquisition(W[rows], y[rows], domains, target, cfg, seed + r)
        rest = np.setdiff1d(np.arange(len(y)), rows)
        rows = np.concatenate([rows, rest[propose(fitted, W[rest], W[rows], cfg)]])
        out.append(rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_released_argument(parser)
    parser.add_argument("--seeds", type=int, default=10, help="seeds: random start sets (and random growth)")
    parser.add_argument("--start", type=int, default=64, help="proxies before the first round")
    parser.add_argument("--batch", type=int, default=32, help="proxies per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds")
    parser.add_argument("--target", default=TARGET, help="the regression target: a released loss domain, or mean")
    args = parser.parse_args()

    params = load_params()
    train, test = released_swarm(args.released)
    domains, target = train.domains, Target.parse(args.target)
    W, y = train.weights, train.target_values(target)
    pool, truth = test.aligned(domains), test.target_values(target)
    active = dataclasses.replace(from_dict(ActiveConfig, params["active"], "active."), batch_size=args.batch)
    check_active(active)
    # the base model ranks; its bootstrap members would only cost time here
    reg = dataclasses.replace(from_dict(RegressionConfig, params["regression"], "regression."), n_bootstrap=0)
    counts = [args.start + r * args.batch for r in range(args.rounds + 1)]
    if counts[-1] > len(y):
        raise SystemExit(f"--start + --rounds x --batch = {counts[-1]} is more than the {len(y)} pool proxies")
    strategies = ["random", *(f"active ({rule})" for rule in ACQUISITION_RULES)]

    runs: dict[str, list[list[dict]]] = {s: [] for s in strategies}  # strategy -> seed -> count -> scores
    start_time = time.perf_counter()
    for seed in range(args.seeds):
        order = np.random.default_rng([seed, len(y)]).permutation(len(y))
        grown = {"random": [order[:n] for n in counts]}
        for rule in ACQUISITION_RULES:
            cfg = dataclasses.replace(active, rule=rule)
            grown[f"active ({rule})"] = grow(order[: args.start], W, y, domains, target, cfg, args.rounds, seed)
        for name, sets in grown.items():
            runs[name].append([score(rows, W, y, domains, pool, truth, reg, target, seed) for rows in sets])
        print(f"seed {seed}: {time.perf_counter() - start_time:.0f} s", flush=True)
    seconds = round(time.perf_counter() - start_time, 1)

    def summary(name: str, i: int, key: str) -> tuple[float, float]:
        return stats(np.array([seed_runs[i][key] for seed_runs in runs[name]]))

    print(
        f"\nActive rounds on RegMix's released swarm: pool {len(y)} training proxies, target {target.name}; "
        f"scored on {len(pool)} test proxies (best test loss {truth.min():.4f}, std {truth.std():.4f}); "
        f"{args.seeds} seeds; acquisition {active.regression.model} + {active.regression.n_bootstrap} members, "
        f"kappa {active.kappa:g}, spacing {active.spacing:g}, explore {active.explore:g}; scored by {reg.model}"
    )
    print(
        f"{'proxies':>7} {'strategy':<28} {'spearman':>8} {'± se':>6} {'vs random':>9} {'± se':>6} "
        f"{'regret':>8} {'± se':>7} {'vs random':>9} {'± se':>7}"
    )

    def paired(name: str, i: int, key: str) -> tuple[float, float]:  # strategy - random, same seed
        return stats(np.array([a[i][key] - b[i][key] for a, b in zip(runs[name], runs["random"])]))

    table = []
    for i, n in enumerate(counts):
        for name in strategies:
            (rho, rho_se), (regret, regret_se) = summary(name, i, "spearman"), summary(name, i, "regret")
            (rho_diff, rho_diff_se), (diff, diff_se) = paired(name, i, "spearman"), paired(name, i, "regret")
            table.append(
                {
                    "proxies": n,
                    "strategy": name,
                    "spearman": round(rho, 4),
                    "spearman_se": round(rho_se, 4),
                    "spearman_vs_random": round(rho_diff, 4),
                    "spearman_vs_random_se": round(rho_diff_se, 4),
                    "regret": round(regret, 5),
                    "regret_se": round(regret_se, 5),
                    "regret_vs_random": round(diff, 5),
                    "regret_vs_random_se": round(diff_se, 5),
                }
            )
            print(
                f"{n:>7} {name:<28} {rho:>8.4f} {rho_se:>6.4f} {rho_diff:>+9.4f} {rho_diff_se:>6.4f} "
                f"{regret:>8.4f} {regret_se:>7.4f} {diff:>+9.4f} {diff_se:>7.4f}"
            )
    print(
        json.dumps(
            {
                "bench": "active",
                "seeds": args.seeds,
                "target": target.name,
                "rule": active.rule,
                "seconds": seconds,
                "table": table,
            }
        )
    )

    def final(name: str) -> dict[str, float]:
        return {k: round(summary(name, len(counts) - 1, k)[0], 5) for k in ("spearman", "regret")}

    print(json.dumps({"proxies": counts[-1], "random": final("random"), "active": final(f"active ({active.rule})")}))


if __name__ == "__main__":
    main()
