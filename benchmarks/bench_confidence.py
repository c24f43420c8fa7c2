"""Is the search's confidence honest, and when should the choice fall back to the prior?

The measurement behind `search.min_confidence`. On RegMix's released swarm (512 training and
256 test proxies, 1M parameters, Pile domains) each run fits the `regression` section of
params.yaml on a random subset of the training proxies (its CV gives the out-of-fold pairs),
lets `search.rule` pick one of the 256 test proxies (regmix.choose.rules.select, the search's own
code, k = 1 as in bench_choice) and judges the pick against a reference: the test proxy nearest
(L1) the Pile's token share, the swarm's prior. The reported probability is
`FittedRegressor.beats` at the pick's predicted gain over the reference; the truth is whether
the pick's true loss is lower.

Targets: every released validation loss, `mean`, and `--random` weighted means of the released
losses (Dirichlet(1) weights, seeded): targets nobody tuned anything on, several of them hard
(their optimum near the prior). Reported:
- calibration: runs binned by the reported probability, beside the share that truly beat the
  reference (honest when the two agree; overconfident when the share is lower);
- per `min_confidence`: mean regret (true loss of the final choice minus the best test loss;
  the reference when it falls back), its standard error over runs, how often it fell back and
  how often the final choice was worse than the reference.

    .venv/bin/python -m benchmarks.bench_confidence [--sizes 32,64] [--seeds 5] [--random 6]
                                                    [--targets mean,github]  # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_choice: LightGBM's threads spin otherwise

import numpy as np

from benchmarks import add_released_argument, add_target_arguments, fit_with_cv, pool_replay
from regmix.choose.rules import l1_nearest, select
from regmix.choose.sampling import pile_generator
from regmix.config import RegressionConfig, SampleConfig, SearchConfig, from_dict
from regmix.files import load_params
from regmix.target import MEAN, Target

THRESHOLDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


def targets(names: str, losses: list[str], n_random: int) -> dict[str, Target]:
    """The released losses and `mean` (`all`, or a comma list), plus `n_random` weighted means."""
    chosen = [*losses, MEAN] if names == "all" else [n for n in names.split(",") if n]
    out = {n: Target.parse(n) for n in chosen}
    rng = np.random.default_rng(0)
    for i in range(n_random):
        weights = rng.dirichlet(np.ones(len(losses)))
        out[f"random_{i}"] = Target.parse({d: round(float(w), 4) for d, w in zip(losses, weights)})
    return out


def run_once(
    W: np.ndarray,
    y: np.ndarray,
    domains: list[str],
    target: Target,
    pool: np.ndarray,
    truth: np.ndarray,
    reference: int,
    reg: RegressionConfig,
    rule: SearchConfig,
    seed: int,
) -> dict:
    """One fit, one pick, its reported probability of beating the reference and the truth."""
    fitted = fit_with_cv(W, y, domains, target, reg, seed)
    pred = fitted.predict(pool)
    members = np.array([m.predict(pool) for m in fitted.members]) if fitted.members else None
    pick = int(select(rule, pool, pred, members, W).rows[0])
    judged = fitted.beats(float(pred[reference] - pred[pick]))
    return {
        "probability": judged["probability"],
        "pairs": judged["pairs"],
        "predicted_gain": float(pred[reference] - pred[pick]),
        "pick": float(truth[pick]),
        "reference": float(truth[reference]),
        "best": float(truth.min()),
    }


def fallback_table(runs: list[dict]) -> list[dict]:
    """Per threshold: the final choice's regret, how often it fell back, how often it lost."""
    rows = []
    for t in THRESHOLDS:
        final = np.array([r["reference"] if r["probability"] < t else r["pick"] for r in runs])
        regret = final - np.array([r["best"] for r in runs])
        rows.append(
            {
                "min_confidence": t,
                "regret": round(float(regret.mean()), 5),
                "se": round(float(regret.std(ddof=1) / np.sqrt(len(regret))), 5),
                "fell_back": int(sum(r["probability"] < t for r in runs)),
                "worse_than_reference": int(np.sum(final > np.array([r["reference"] for r in runs]))),
            }
        )
    return rows


def calibration(runs: list[dict]) -> list[dict]:
    """Runs binned by the reported probability, beside the share that truly beat the reference."""
    p = np.array([r["probability"] for r in runs])
    won = np.array([r["pick"] < r["reference"] for r in runs])
    rows = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        inside = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if inside.any():
            rows.append(
                {
                    "bin": f"[{lo:g}, {hi:g}{']' if hi == 1 else ')'}",
                    "runs": int(inside.sum()),
                    "reported": round(float(p[inside].mean()), 4),
                    "observed": round(float(won[inside].mean()), 4),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_released_argument(parser)
    parser.add_argument("--sizes", default="32,64", help="training proxies per run (random subsets)")
    parser.add_argument("--seeds", type=int, default=5, help="random subsets per size and target")
    add_target_arguments(parser, "mean,github", 6)
    args = parser.parse_args()

    params = load_params()
    train, test, pool, reg, rule = pool_replay(args.released, params)
    domains = train.domains
    gen = pile_generator(from_dict(SampleConfig, params["sample"], "sample."))
    prior = np.array([dict(zip(gen.domains, gen.prior))[d] for d in domains])
    dist, idx = l1_nearest(prior[None, :], pool)
    reference = int(idx[0, 0])
    goals = targets(args.targets, list(train.losses.columns), args.random)

    runs: list[dict] = []
    start = time.perf_counter()
    for name, target in goals.items():
        y_all, truth = train.target_values(target), test.target_values(target)
        for size in (int(s) for s in args.sizes.split(",")):
            for seed in range(args.seeds):
                rows = np.sort(np.random.default_rng([size, seed]).choice(len(y_all), size, replace=False))
                run = run_once(
                    train.weights[rows], y_all[rows], domains, target, pool, truth, reference, reg, rule, seed
                )
                runs.append({"target": name, "n_train": size, "seed": seed, **run})
                print(
                    f"{name:<16} n {size:>3} seed {seed}: P(beats reference) {run['probability']:.3f} "
                    f"(gain {run['predicted_gain']:+.3f}, {run['pairs']} pairs); true gain "
                    f"{run['reference'] - run['pick']:+.3f}",
                    flush=True,
                )
    seconds = round(time.perf_counter() - start, 1)

    print(
        f"\nReference: test proxy {reference}, L1 {dist[0, 0]:.3f} from the Pile's token share; rule "
        f"{rule.rule}; {len(runs)} runs ({len(goals)} targets x sizes {args.sizes} x {args.seeds} seeds)"
    )
    print("\nCalibration of the reported probability that the pick beats the reference:")
    print(f"{'bin':<14} {'runs':>5} {'reported':>9} {'observed':>9}")
    for row in calibration(runs):
        print(f"{row['bin']:<14} {row['runs']:>5} {row['reported']:>9.3f} {row['observed']:>9.3f}")
    hard = [r for r in runs if r["probability"] < 0.99]
    print(
        f"\nFalling back to the reference below min_confidence (regret in nats, ± standard error over runs; "
        f"all {len(runs)} runs, then the {len(hard)} reported below 0.99):"
    )
    print(
        f"{'min_confidence':>14} {'regret':>8} {'± se':>7} {'fell back':>9} {'lost':>5} | {'regret':>8} "
        f"{'± se':>7} {'fell back':>9} {'lost':>5}"
    )
    table, table_hard = fallback_table(runs), fallback_table(hard) if len(hard) > 1 else []
    for row, h in zip(table, table_hard or [None] * len(table)):
        tail = f" | {h['regret']:>8.4f} {h['se']:>7.4f} {h['fell_back']:>9} {h['worse_than_reference']:>5}" if h else ""
        print(
            f"{row['min_confidence']:>14g} {row['regret']:>8.4f} {row['se']:>7.4f} {row['fell_back']:>9} "
            f"{row['worse_than_reference']:>5}{tail}"
        )
    print(
        json.dumps(
            {
                "bench": "confidence",
                "runs": len(runs),
                "seconds": seconds,
                "reference_l1": float(dist[0, 0]),
                "calibration": calibration(runs),
                "fallback": table,
                "fallback_hard": table_hard,
                "targets": {n: t.name for n, t in goals.items()},
                "per_run": runs,
            }
        )
    )


if __name__ == "__main__":
    main()
